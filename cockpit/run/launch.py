"""Starting, stopping and resuming trainer processes.

The trainer always runs as its own process in its own session (``start_new_session``):
stdin closed, stdout and stderr into ``train.log``. Closing the terminal, dropping the
SSH connection or quitting the TUI does not touch it. The launcher writes only
``launch.json`` (the pid it spawned, the layout); viewers read the merged status
(:mod:`cockpit.run.status`) and follow ``events.jsonl``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cockpit.config import TrainConfig
from cockpit.errors import CockpitError
from cockpit.run_config import config_used_text, finalize_config
from cockpit.run.rundir import CONFIG_FILE, LOG_FILE, create_run_dir
from cockpit.run.status import ACTIVE_STATES, effective_status, pid_alive, read_status, write_launch
from cockpit.run.atomic import atomic_write_text
from cockpit.run.registry import register_root

def preflight(cfg: TrainConfig, progress=None) -> None:
    """Checks before a run directory is created, so a refused start leaves nothing behind:
    the model path, the output directory and its disk, then the data (every record, and
    something to learn; tokenized and cached when the model's tokenizer is here).
    ``progress(message, fraction)`` hears about the data check."""
    from cockpit.data.prepare import check_training_data, resolve_sources
    from cockpit.training.chaining import check_chain
    from cockpit.models.sources import check_model_spec

    from cockpit.training.speedups import check_speedups
    from cockpit.training.trackers import check_trackers

    check_model_spec(cfg.model)
    check_chain(cfg)  # model=RUN: a finished run, started from in a way that works
    check_speedups(cfg)  # kernels=liger / attn=flash_attention_2 where they cannot work
    check_trackers(cfg.report_to)  # report_to=wandb without wandb installed
    resolve_sources(cfg)  # a missing file or an empty directory: one line before anything is read
    from cockpit.run.disk import require_free_space
    from cockpit.run.rundir import ensure_runs_root

    ensure_runs_root(Path(cfg.output_dir))
    require_free_space(Path(cfg.output_dir), what="the run directory")
    if cfg.is_preference:
        from cockpit.data.preference import check_preference_records
        from cockpit.training.stages import check_stage

        check_stage(cfg)  # the installed TRL offers this stage
        check_preference_records(cfg)
    else:
        check_training_data(cfg, progress)


def prepare_run(cfg: TrainConfig, progress=None) -> Path:
    """Create the run directory with ``config_used.yaml`` (every path resolved, so the run
    is self-contained: :func:`cockpit.run_config.finalize_config`) and a ``starting``
    status, and remember its runs root so the run is found from any directory."""
    cfg = finalize_config(cfg)
    preflight(cfg, progress)
    run_dir = create_run_dir(cfg.output_dir, cfg.run_name)
    register_root(run_dir.parent)
    atomic_write_text(run_dir / CONFIG_FILE, config_used_text(cfg))
    write_launch(run_dir, new_session=True, pid=None, model=cfg.model, method=cfg.method, started=time.time())
    return run_dir


def check_launch(num_processes: int, accelerate_config: str | None = None) -> None:
    """The process layout is possible: called before a run directory is created."""
    if num_processes < 1:
        raise CockpitError(f"--num-processes must be >= 1, got {num_processes}")
    if accelerate_config and not Path(accelerate_config).is_file():
        raise CockpitError(f"accelerate config {accelerate_config} does not exist",
                           "write one with `accelerate config` or leave --accelerate-config out")


def trainer_command(run_dir: Path, resume: bool = False, num_processes: int = 1,
                    accelerate_config: str | None = None) -> list[str]:
    """The command line of the trainer process.

    More than one process goes through ``accelerate launch``, whose torchrun-based launcher
    (``--multi_gpu``) starts one trainer per rank: DDP over NCCL on GPUs, gloo on a CPU.
    An accelerate config file (FSDP, DeepSpeed) is passed through and decides the rest.
    """
    if num_processes > 1 or accelerate_config:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes),
               "--num_machines", "1"]
        if accelerate_config:
            cmd += ["--config_file", str(accelerate_config)]
        else:
            # Precision is the trainer's choice (TrainingArguments), not the launcher's.
            cmd += ["--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no"]
        cmd += ["-m", "cockpit.training.trainer_main", str(run_dir)]
    else:
        cmd = [sys.executable, "-m", "cockpit.training.trainer_main", str(run_dir)]
    if resume:
        cmd.append("--resume")
    return cmd


def spawn_trainer(run_dir: Path, resume: bool = False, num_processes: int = 1,
                  accelerate_config: str | None = None) -> int:
    """Start the detached trainer for ``run_dir``; returns its pid (the launcher's, for DDP,
    until rank 0 writes its own into ``status.json``), written to the launcher's own ``launch.json``."""
    check_launch(num_processes, accelerate_config)
    log_path = run_dir / LOG_FILE
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    with open(log_path, "ab") as log_fh:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            trainer_command(run_dir, resume, num_processes, accelerate_config),
            stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, env=env, cwd=os.getcwd(),
        )
    # Remembered so that `resume` relaunches the same layout (the RNG state is saved per rank).
    write_launch(run_dir, pid=proc.pid, launcher_pid=proc.pid, num_processes=num_processes,
                 accelerate_config=str(Path(accelerate_config).resolve()) if accelerate_config else None)
    return proc.pid


def start_run(cfg: TrainConfig, num_processes: int = 1, accelerate_config: str | None = None,
              progress=None) -> Path:
    """Create a run for ``cfg`` and start its detached trainer; returns the run directory."""
    run_dir = prepare_run(cfg, progress)
    spawn_trainer(run_dir, num_processes=num_processes, accelerate_config=accelerate_config)
    return run_dir


def stop_run(run_dir: Path, timeout: float = 0.0) -> str:
    """Ask the trainer to stop gracefully (SIGTERM: checkpoint, then ``stopped``).

    With ``timeout`` > 0, wait that long for a final state; returns the state seen last.
    """
    status = effective_status(run_dir)
    if status.get("state") not in ACTIVE_STATES:
        raise CockpitError(f"run {run_dir.name} is not running (state: {status.get('state')})",
                           "nothing to stop" if status.get("state") != "failed" else
                           f"resume it with: llm-cockpit resume {run_dir.name}")
    pid = int(read_status(run_dir)["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return effective_status(run_dir).get("state", "unknown")
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = effective_status(run_dir).get("state")
        if state not in ACTIVE_STATES:
            return str(state)
        time.sleep(0.2)
    return str(effective_status(run_dir).get("state"))


def check_resumable(run_dir: Path) -> None:
    """Only a stopped or failed run can be resumed: a running one is followed, a finished one is done."""
    status = effective_status(run_dir)
    if status.get("state") in ACTIVE_STATES:
        raise CockpitError(f"run {run_dir.name} is still running (pid {status.get('pid')})",
                           f"follow it with: llm-cockpit attach {run_dir.name}")
    if status.get("state") == "finished":
        raise CockpitError(f"run {run_dir.name} already finished", "start a new run with llm-cockpit train")


def single_process(num_processes: int, accelerate_config: str | None) -> bool:
    """The layout that trains in one plain process (no launcher), e.g. in the foreground."""
    return num_processes == 1 and not accelerate_config


def resume_layout(run_dir: Path, num_processes: int | None = None,
                  accelerate_config: str | None = None) -> tuple[int, str | None]:
    """The process layout of a resume: the one asked for, else the one the run was started with."""
    if num_processes is not None:
        return num_processes, accelerate_config
    status = read_status(run_dir)
    return int(status.get("num_processes") or 1), accelerate_config or status.get("accelerate_config")


def resume_run(run_dir: Path, num_processes: int | None = None, accelerate_config: str | None = None) -> int:
    """Continue a stopped or failed run from its newest complete checkpoint (detached).

    Without ``num_processes`` the run keeps the process count (and accelerate config) it was
    started with.
    """
    check_resumable(run_dir)
    num_processes, accelerate_config = resume_layout(run_dir, num_processes, accelerate_config)
    write_launch(run_dir, new_session=True)
    return spawn_trainer(run_dir, resume=True, num_processes=num_processes, accelerate_config=accelerate_config)


def begin_session_here(run_dir: Path) -> None:
    """This process is about to continue the run itself (``resume --foreground``): a new
    launch session, with this process's pid, once the run is resumable."""
    check_resumable(run_dir)
    write_launch(run_dir, new_session=True, pid=os.getpid())


def wait_for(run_dir: Path, states: tuple[str, ...], timeout: float) -> str:
    """Poll the status until one of ``states`` (or the timeout); returns the last state."""
    deadline = time.time() + timeout
    state = ""
    while time.time() < deadline:
        state = str(effective_status(run_dir).get("state"))
        if state in states:
            return state
        time.sleep(0.2)
    return state


__all__ = ["prepare_run", "start_run", "stop_run", "resume_run", "spawn_trainer", "wait_for", "pid_alive"]
