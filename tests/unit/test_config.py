"""Config: presets load and validate, overrides are typed, errors name the key."""

from __future__ import annotations

import pytest
import yaml

from cockpit.config import (TrainConfig, build_config, config_to_yaml, field_docs, field_names, list_presets,
                            load_config_file, parse_overrides)
from cockpit.errors import CockpitError
from cockpit.paths import PRESETS_DIR

REQUIRED_KEYS = ["model", "data", "eval_data", "method", "epochs", "max_steps", "batch_size", "grad_accum", "lr",
                 "warmup_ratio", "lr_scheduler", "weight_decay", "max_length", "lora_r", "lora_alpha",
                 "lora_dropout", "lora_target_modules", "grad_ckpt", "save_steps", "eval_steps", "logging_steps",
                 "sample_every", "seed", "output_dir"]


def test_every_required_key_exists_and_has_a_docstring():
    docs = field_docs()
    for key in REQUIRED_KEYS:
        assert key in field_names()
    assert set(docs) == set(field_names()), set(field_names()) - set(docs)
    assert all(len(d) > 10 for d in docs.values())


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_loads_validates_and_explains_itself(name):
    cfg = build_config(name)
    assert isinstance(cfg, TrainConfig)
    text = (PRESETS_DIR / f"{name}.yaml").read_text()
    assert text.startswith("#"), "a preset starts with a header comment"
    assert "arithmetic" in text.lower()


def test_presets_include_the_cpu_demo_default_and_the_workshop_gpu_recipe():
    assert {"cpu-demo", "gpu-8b-workshop"} <= set(list_presets())
    assert build_config() == build_config("cpu-demo")
    gpu = build_config("gpu-8b-workshop")
    assert (gpu.lora_r, gpu.lora_alpha, gpu.lora_dropout, gpu.lr, gpu.epochs) == (64, 128, 0.05, 2e-4, 5)
    assert (gpu.batch_size, gpu.grad_accum, gpu.max_length, gpu.lr_scheduler) == (4, 2, 512, "cosine")
    assert (gpu.warmup_ratio, gpu.precision) == (0.03, "auto")  # bf16 on Ampere+, fp16 before: the trainer decides
    assert set(gpu.lora_target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                            "down_proj"}


def test_overrides_are_typed_like_the_fields():
    over = parse_overrides(["lr=1e-4", "grad_ckpt=true", "epochs=2", "lora_target_modules=q_proj,v_proj",
                            "eval_data=none", "batch_size=8"])
    cfg = build_config(None, None, over)
    assert cfg.lr == 1e-4 and cfg.grad_ckpt is True and cfg.epochs == 2.0 and cfg.batch_size == 8
    assert cfg.lora_target_modules == ["q_proj", "v_proj"] and cfg.eval_data is None


@pytest.mark.parametrize("pairs, fragment", [
    (["lrr=1e-4"], "unknown config key 'lrr'"),
    (["method=dora"], "allowed: full | lora | int8 | qlora"),
    (["batch_size=-1"], "'batch_size' has an impossible value -1"),
    (["batch_size=two"], "'batch_size' must be a whole number"),
    (["lr=0"], "'lr' has an impossible value"),
    (["lr_scheduler=wavy"], "allowed: cosine"),
    (["grad_ckpt=maybe"], "'grad_ckpt' must be true or false"),
    (["warmup_ratio=1.5"], "warmup_ratio"),
    (["epochs=0"], "'epochs'"),
    (["max_length=0"], "'max_length'"),
    (["run_name=../escape"], "'run_name'"),
    (["lora_target_modules="], "lora_target_modules"),
    (["noequals"], "is not key=value"),
])
def test_bad_values_name_the_key_and_what_is_allowed(pairs, fragment):
    with pytest.raises(CockpitError) as err:
        build_config(None, None, parse_overrides(pairs))
    assert fragment in err.value.one_line()


def test_unknown_key_suggests_the_closest():
    with pytest.raises(CockpitError, match="did you mean 'lora_alpha'"):
        build_config(None, None, {"lora_alhpa": 3})


def test_config_used_round_trips_and_never_holds_a_token(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_planted_secret_123")
    cfg = build_config(None, None, {"lr": 3e-4})
    path = tmp_path / "config_used.yaml"
    path.write_text(config_to_yaml(cfg))
    assert load_config_file(path) == cfg
    assert "hf_planted_secret_123" not in path.read_text()
    assert yaml.safe_load(path.read_text())["lr"] == 3e-4


def test_config_file_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [1, 2\n")
    with pytest.raises(CockpitError, match="not valid YAML"):
        build_config(None, bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(CockpitError, match="expected a mapping"):
        build_config(None, listy)
    with pytest.raises(CockpitError, match="is a directory"):
        build_config(None, tmp_path)
    with pytest.raises(CockpitError, match="no preset named 'nope'"):
        build_config("nope")
