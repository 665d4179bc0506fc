"""One config builder: the wizard's answers and the CLI's flags for the same choices give
the same ``config_used.yaml``, on a CPU and on a bf16 GPU (the precision is decided where
the run trains, never by a front end)."""

from __future__ import annotations

import pytest

from cockpit.app.config import TrainRequest, build_train_config
from cockpit.app.wizard import DataChoice, ModelChoice, WizardEngine, demo_data
from cockpit.cli.main import main
from cockpit.config import BUNDLED_MODEL
from cockpit.planning.estimate import optimizer_steps
from cockpit.run_config import config_used_text
from cockpit.training.precision import decide_precision, precision_for_hardware
from tests.tui.conftest import cpu_profile, gpu_profile

# what a person types for the wizard's default answers on each machine
CLI_FLAGS = {
    "cpu": [],
    "bf16-gpu": ["--preset", "gpu-8b-workshop", f"model={BUNDLED_MODEL}"],
}


@pytest.mark.parametrize("machine", ["cpu", "bf16-gpu"])
def test_the_wizard_and_the_cli_write_the_same_config_used_yaml(machine, tmp_path, capsys):
    profile = cpu_profile() if machine == "cpu" else gpu_profile()
    runs = tmp_path / "runs"
    engine = WizardEngine(runs, detect=lambda: profile)
    train, evaluation = demo_data()
    cfg = engine.build_config(ModelChoice(BUNDLED_MODEL, "new"), engine.default_method(),
                              DataChoice(data=train, eval_data=evaluation), overrides={"epochs": 2})
    assert main(["train", "--dry-run", *CLI_FLAGS[machine], f"output_dir={runs}", "epochs=2"]) == 0
    assert capsys.readouterr().out == config_used_text(cfg)
    assert "precision: auto" in config_used_text(cfg)  # decided by the trainer on the GPU it gets
    assert precision_for_hardware(cfg.precision, cfg.method, profile).compute == ("fp32" if machine == "cpu" else "bf16")


def test_the_wizard_request_is_what_the_cli_builds(tmp_path):
    engine = WizardEngine(tmp_path, detect=gpu_profile)
    request = engine.request(ModelChoice(), engine.default_method(), DataChoice(stage="dpo"))
    assert request.preset == "gpu-8b-workshop"
    assert build_train_config(request) == engine.build_config(ModelChoice(), engine.default_method(),
                                                              DataChoice(stage="dpo"))
    assert build_train_config(request).lr == build_train_config(TrainRequest("cpu-demo-dpo")).lr


@pytest.mark.parametrize("want,bf16,expected", [("auto", True, "bf16"), ("auto", False, "fp16"),
                                                ("fp16", True, "fp16"), ("bf16", False, "bf16"), ("fp32", True, "fp32")])
def test_one_precision_decision(want, bf16, expected):
    assert decide_precision(want, "lora", cuda=True, bf16_supported=bf16).compute == expected
    assert decide_precision(want, "lora", cuda=False, bf16_supported=bf16).compute == "fp32"
    assert decide_precision(want, "full", cuda=True, bf16_supported=bf16).dtype_name == "float32"  # fp32 masters


def _hf_max_steps(train_examples, batch_size, grad_accum, epochs, world_size, tiny_model_dir, tmp_path):
    """The optimizer steps the HF Trainer itself computes for this layout (epochs, no max_steps)."""
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=batch_size * world_size,
                             gradient_accumulation_steps=grad_accum, num_train_epochs=epochs, report_to=[],
                             use_cpu=True)
    trainer = Trainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), args=args,
                      train_dataset=[{"input_ids": [1, 2], "labels": [1, 2]}] * train_examples)
    return trainer.set_initial_training_values(args, trainer.get_train_dataloader())[-1]


@pytest.mark.parametrize("n,batch,accum,epochs,world", [(13, 2, 3, 1.5, 1), (60, 4, 1, 6, 1), (9, 4, 4, 0.5, 1),
                                                        (25, 2, 2, 2.25, 2), (7, 8, 1, 1, 1)])
def test_the_step_count_is_the_hf_trainers(n, batch, accum, epochs, world, tiny_model_dir, tmp_path):
    cfg = build_train_config(TrainRequest(choices={"batch_size": batch, "grad_accum": accum, "epochs": epochs}))
    # world processes of `batch` each see the batches one process of world x batch would
    assert optimizer_steps(n, cfg, world) == _hf_max_steps(n, batch, accum, epochs, world, tiny_model_dir, tmp_path)
    assert optimizer_steps(n, build_train_config(TrainRequest(choices={"max_steps": 5})), world) == 5
    assert optimizer_steps(0, cfg) == 0
