"""report_to: trackers through transformers' integrations, refused in one line when missing."""

from __future__ import annotations

import importlib.util

import pytest

from cockpit.config import build_config
from cockpit.errors import CockpitError
from cockpit.training.trackers import check_trackers, tracker_environment, tracker_names


def test_names_parse_and_none_means_no_tracker():
    assert tracker_names("tensorboard") == ["tensorboard"]
    assert tracker_names(" TensorBoard , wandb ") == ["tensorboard", "wandb"]
    assert tracker_names("none") == [] and tracker_names("") == []


@pytest.mark.parametrize("value", ["tensorbord", "none,wandb", "wandb;mlflow"])
def test_unknown_trackers_are_refused_with_the_choices(value):
    with pytest.raises(CockpitError) as err:
        build_config("cpu-demo", None, {"report_to": value})
    assert "report_to" in err.value.one_line() and "tensorboard | wandb | mlflow | trackio" in err.value.one_line()


def test_none_and_the_default_are_valid_config_values():
    assert build_config("cpu-demo", None, {"report_to": "none"}).report_to == "none"
    assert build_config("cpu-demo", None, {}).report_to == "tensorboard"


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_a_tracker_that_is_not_installed_is_refused_before_any_run_directory(tiny_config, tmp_path):
    from cockpit.run.launch import preflight

    cfg = tiny_config(report_to="tensorboard,wandb")
    with pytest.raises(CockpitError) as err:
        preflight(cfg)
    line = err.value.one_line()
    assert "report_to=wandb needs the wandb package" in line and "WANDB_API_KEY" in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    check_trackers("tensorboard")  # installed: no complaint


def test_local_trackers_write_inside_the_run_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    env = tracker_environment("tensorboard,mlflow,wandb", tmp_path)
    assert env == {"TENSORBOARD_LOGGING_DIR": str(tmp_path / "logs"),
                   "MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri(), "WANDB_PROJECT": "llm-cockpit"}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert "MLFLOW_TRACKING_URI" not in tracker_environment("mlflow", tmp_path)  # the user's own wins
    assert tracker_environment("none", tmp_path) == {}


@pytest.mark.parametrize("report_to, tfevents", [("tensorboard", True), ("none", False)])
def test_the_trainer_logs_to_tensorboard_only_when_asked(tiny_config, report_to, tfevents):
    from cockpit.run import events as ev
    from cockpit.run.launch import prepare_run
    from cockpit.training.trainer import TrainingRun

    cfg = tiny_config(report_to=report_to, max_steps=2, save_steps=100)
    run_dir = prepare_run(cfg)
    TrainingRun(run_dir, sink=ev.ListSink()).execute()
    assert bool(list(run_dir.rglob("events.out.tfevents.*"))) is tfevents
