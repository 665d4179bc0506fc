"""A run's config stores resolved paths (self-contained), and old runs with relative ones still load."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from cockpit.config import BUNDLED_MODEL, build_config
from cockpit.paths import DATA_DIR
from cockpit.run.rundir import CONFIG_FILE
from cockpit.run_config import finalize_config, load_run_config, origin_dir, resolve_data_path
from cockpit.run.registry import registered_roots


def test_relative_paths_become_absolute_and_hub_ids_stay(tmp_path, monkeypatch, tiny_model_dir):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "train.jsonl").write_text("{}\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny").symlink_to(tiny_model_dir)
    cfg = finalize_config(build_config(overrides={"data": "mine/train.jsonl", "eval_data": "corpus/*.jsonl",
                                                  "output_dir": "out/runs", "model": "models/tiny"}))
    assert cfg.data == str(tmp_path / "mine" / "train.jsonl")
    assert cfg.eval_data == str(tmp_path / "corpus" / "*.jsonl")  # a glob stays a glob, made absolute
    assert cfg.output_dir == str(tmp_path / "out" / "runs")
    assert cfg.model == str(tmp_path / "models" / "tiny")
    assert cfg.model_path == str(Path(tiny_model_dir).resolve())  # where it really is

    hub = finalize_config(build_config(overrides={"data": "hf:someone/dataset:train", "eval_data": None,
                                                  "model": "someone/not-downloaded"}))
    assert (hub.data, hub.eval_data, hub.model, hub.model_path) == ("hf:someone/dataset:train", None,
                                                                    "someone/not-downloaded", None)


def test_the_default_data_resolves_to_the_bundled_file_outside_the_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = finalize_config(build_config(overrides={"eval_data": "data/dsl_eval.jsonl"}))
    assert cfg.data == str(DATA_DIR / "dsl_train.jsonl") and Path(cfg.data).is_file()
    assert cfg.eval_data == str(DATA_DIR / "dsl_eval.jsonl")
    assert cfg.model == BUNDLED_MODEL and cfg.model_path.endswith("smollm2-135m-instruct")
    # a file of that name here wins over the bundled one
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dsl_train.jsonl").write_text("{}\n")
    assert resolve_data_path("data/dsl_train.jsonl") == str(tmp_path / "data" / "dsl_train.jsonl")
    # missing everywhere: absolute here, so the error that follows names the full path
    assert resolve_data_path("data/nope.jsonl") == str(tmp_path / "data" / "nope.jsonl")


def test_prepare_run_writes_absolute_paths_and_remembers_the_root(tmp_path, monkeypatch, tiny_model_dir, tiny_data):
    from cockpit.run.launch import prepare_run

    project = tmp_path / "proj"
    project.mkdir()
    (project / "train.jsonl").write_text(tiny_data.read_text())
    monkeypatch.chdir(project)
    run_dir = prepare_run(build_config(overrides={"model": str(tiny_model_dir), "data": "train.jsonl"}))
    assert run_dir.parent == project / "outputs" / "runs"
    saved = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
    assert saved["data"] == str(project / "train.jsonl")
    assert saved["output_dir"] == str(project / "outputs" / "runs")
    assert saved["eval_data"] == str(DATA_DIR / "dsl_eval.jsonl")  # the preset's, found in the bundled data
    assert saved["model"] == str(tiny_model_dir) and os.path.isabs(saved["model_path"])
    assert registered_roots() == [(project / "outputs" / "runs").resolve()]


def _old_run(project: Path, output_dir: str = "outputs/runs") -> Path:
    """A run as llm-cockpit wrote it before paths were stored absolute: as typed."""
    run = project / output_dir / "2025-01-01_10-00-00"
    run.mkdir(parents=True)
    (project / "data").mkdir()
    (project / "data" / "mine.jsonl").write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n")
    (project / "models" / "tiny").mkdir(parents=True)
    (project / "models" / "tiny" / "config.json").write_text("{}")
    (run / CONFIG_FILE).write_text(yaml.safe_dump({"model": "models/tiny", "data": "data/mine.jsonl",
                                                   "eval_data": "data/mine.jsonl", "output_dir": output_dir}))
    return run


def test_an_old_run_with_relative_paths_loads_from_another_directory(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    run = _old_run(project)
    monkeypatch.chdir(tmp_path)
    cfg = load_run_config(run)
    assert cfg.data == cfg.eval_data == str(project / "data" / "mine.jsonl")
    assert cfg.model == str(project / "models" / "tiny")
    assert cfg.output_dir == str(project / "outputs" / "runs")
    assert origin_dir(run.parent, "./outputs/runs/") == project


def test_an_old_run_moved_elsewhere_still_loads_from_its_original_directory(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    run = _old_run(project, output_dir="../runs-elsewhere")  # its origin cannot be told from where it sits
    assert origin_dir(run.parent, "../runs-elsewhere") is None
    monkeypatch.chdir(project)  # the directory it was started from, as these runs always needed
    cfg = load_run_config(run)
    assert cfg.data == str(project / "data" / "mine.jsonl") and cfg.model == str(project / "models" / "tiny")
