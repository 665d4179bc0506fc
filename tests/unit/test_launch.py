"""The trainer's command line for one process, DDP and a passed-through accelerate config."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cockpit.errors import CockpitError
from cockpit.run.launch import check_launch, trainer_command


def test_one_process_runs_the_trainer_module_directly():
    assert trainer_command(Path("/r"), resume=True) == [sys.executable, "-m", "cockpit.training.trainer_main", "/r", "--resume"]


def test_ddp_goes_through_accelerates_torchrun_launcher_with_the_cockpits_precision():
    cmd = trainer_command(Path("/r"), num_processes=4)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "4"
    # --multi_gpu is accelerate's torchrun path: NCCL on GPUs, gloo (MULTI_CPU) without CUDA;
    # without it accelerate would quietly start a single process on a CPU machine
    assert "--multi_gpu" in cmd and cmd[cmd.index("--mixed_precision") + 1] == "no"
    assert cmd[-3:] == ["-m", "cockpit.training.trainer_main", "/r"]


def test_an_accelerate_config_decides_the_strategy(tmp_path):
    cfg = tmp_path / "fsdp.yaml"
    cfg.write_text("distributed_type: FSDP\n")
    cmd = trainer_command(Path("/r"), resume=True, num_processes=8, accelerate_config=str(cfg))
    assert cmd[cmd.index("--config_file") + 1] == str(cfg)
    assert "--multi_gpu" not in cmd and "--mixed_precision" not in cmd  # the file's settings win
    assert cmd[-1] == "--resume"


@pytest.mark.parametrize("n, config, fragment", [
    (0, None, "--num-processes must be >= 1, got 0"),
    (2, "/no/such/accelerate.yaml", "accelerate config /no/such/accelerate.yaml does not exist"),
])
def test_impossible_layouts_are_refused(n, config, fragment):
    with pytest.raises(CockpitError) as err:
        check_launch(n, config)
    assert fragment in err.value.one_line()
