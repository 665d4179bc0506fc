"""Runs from anywhere: a run started in a project directory, worked on from another directory.

The user's case: ``train`` typed in a project with relative paths, then an SSH reconnect
lands in ``~``; ``runs``, ``attach``, ``stop``, ``resume``, ``eval`` and ``export`` must all
still find the run and read its data and model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cockpit.run import events as ev
from cockpit.cli.main import main
from cockpit.paths import DATA_DIR
from cockpit.run.rundir import CONFIG_FILE
from cockpit.run.status import read_status
from tests.conftest import TINY_ROWS, write_jsonl
from tests.unit.test_runs_registry import fake_run
from tests.helpers import wait_until

TINY = ["max_length=48", "batch_size=2", "lora_r=4", "sample_count=1", "sample_max_new_tokens=2",
        "sample_every=0", "eval_steps=0", "eval_data=none", "eval_split=0.25"]


def cli(*args, cwd: Path, home: Path | None = None, timeout: float = 300):
    env = dict(os.environ, **({"LLM_COCKPIT_HOME": str(home)} if home else {}))
    return subprocess.run([sys.executable, "-m", "cockpit.cli.main", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def make_project(root: Path, tiny_model_dir: Path) -> Path:
    """A project as a newcomer has one: data and a model named by relative paths."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir()
    write_jsonl(root / "data" / "train.jsonl", TINY_ROWS)
    (root / "models").mkdir()
    (root / "models" / "tiny").symlink_to(tiny_model_dir)
    return root


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_model_dir):
    """A short finished run trained in a project directory (relative paths, default output_dir),
    its state directory, and another directory to work from."""
    home = tmp_path_factory.mktemp("home")
    project = make_project(tmp_path_factory.mktemp("w") / "project", tiny_model_dir)
    out = cli("train", "model=models/tiny", "data=data/train.jsonl", "max_steps=2", *TINY, "--foreground",
              cwd=project, home=home)
    assert out.returncode == 0, out.stderr
    run_dir = Path(out.stdout.strip().splitlines()[0])
    assert run_dir.parent == project / "outputs" / "runs"
    return run_dir, home, tmp_path_factory.mktemp("elsewhere")


def test_the_run_directory_is_self_contained(finished):
    run_dir, _, _ = finished
    project = run_dir.parents[2]
    saved = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
    assert saved["data"] == str(project / "data" / "train.jsonl")
    assert saved["output_dir"] == str(project / "outputs" / "runs")
    assert saved["model"] == str(project / "models" / "tiny")
    assert Path(saved["model_path"]) == (project / "models" / "tiny").resolve()


def test_runs_and_attach_find_it_from_another_directory(finished):
    run_dir, home, elsewhere = finished
    out = cli("runs", cwd=elsewhere, home=home)
    assert out.returncode == 0 and run_dir.name in out.stdout and "finished" in out.stdout, out.stderr
    listing = json.loads(cli("runs", "--json", cwd=elsewhere, home=home).stdout)
    assert [(r["name"], r["root"]) for r in listing] == [(run_dir.name, str(run_dir.parent))]
    out = cli("attach", "--plain", cwd=elsewhere, home=home)  # no run named: the newest
    assert out.returncode == 0 and "run finished" in out.stdout, out.stderr
    out = cli("attach", run_dir.name[:10], "--plain", cwd=elsewhere, home=home)  # a unique prefix
    assert out.returncode == 0 and "run finished" in out.stdout, out.stderr


def test_eval_reads_the_runs_data_from_another_directory(finished):
    run_dir, home, elsewhere = finished
    out = cli("eval", run_dir.name, "--limit", "1", "--max-new-tokens", "2", "--json", cwd=elsewhere, home=home)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["data"] == f"{run_dir.parents[2] / 'data' / 'train.jsonl'} (held-out split)"
    assert (run_dir / "eval.json").is_file()


def test_export_finds_the_run_and_its_base_model_from_another_directory(finished):
    run_dir, home, elsewhere = finished
    out = cli("export", run_dir.name, "--to", "gguf", "--dry-run", "--json", cwd=elsewhere, home=home)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["dry_run"] and doc["doctor"]["ok"], doc
    assert not (run_dir / "export").exists()


def test_without_the_registry_only_the_current_directory_counts(finished):
    run_dir, _, elsewhere = finished
    out = cli("runs", cwd=elsewhere)  # this test's own, empty state directory
    assert run_dir.name not in out.stdout and "no runs under outputs/runs here" in out.stderr
    out = cli("attach", run_dir.name, "--plain", cwd=elsewhere)
    assert out.returncode == 1 and f"no run named {run_dir.name!r}" in out.stderr
    out = cli("runs", cwd=run_dir.parents[2])  # in the project, as it always was
    assert run_dir.name in out.stdout


def test_stop_and_resume_from_another_directory(tmp_path, tiny_model_dir):
    project = make_project(tmp_path / "project", tiny_model_dir)
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    out = cli("train", "model=models/tiny", "data=data/train.jsonl", "max_steps=400", "save_steps=2", *TINY,
              cwd=project)
    assert out.returncode == 0, out.stderr
    run_dir = Path(out.stdout.strip().splitlines()[-1])
    wait_until(lambda: read_status(run_dir).get("step", 0) >= 2, what="two steps")

    out = cli("stop", "--wait", "120", cwd=elsewhere)  # no run named: the newest, found through the registry
    assert out.returncode == 0 and read_status(run_dir)["state"] == "stopped", out.stderr
    stopped_at = read_status(run_dir)["step"]

    out = cli("resume", run_dir.name, cwd=elsewhere)  # the trainer starts in this directory
    assert out.returncode == 0, out.stderr
    wait_until(lambda: read_status(run_dir).get("state") == "running"
               and read_status(run_dir).get("step", 0) > stopped_at
               or read_status(run_dir).get("state") == "failed", what="the resumed run to train")
    assert read_status(run_dir)["state"] == "running", read_status(run_dir)
    out = cli("stop", run_dir.name, "--wait", "120", cwd=elsewhere)
    assert out.returncode == 0 and read_status(run_dir)["state"] == "stopped", out.stderr
    started = [e for e in ev.read_events(run_dir / "events.jsonl") if isinstance(e, ev.RunStarted)]
    assert len(started) == 2 and started[-1].resumed_from


def test_runs_says_which_directory_when_there_are_several(tmp_path, monkeypatch, capsys):
    from cockpit.run.registry import register_root

    a = fake_run(tmp_path / "a" / "runs", "2025-01-01_10-00-00-a")
    b = fake_run(tmp_path / "b" / "runs", "2025-01-02_10-00-00-b")
    register_root(a.parent)
    register_root(b.parent)
    monkeypatch.chdir(tmp_path)
    assert main(["runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == [f"in {a.parent.resolve()}:", lines[2], f"in {b.parent.resolve()}:", lines[4]]
    assert lines[2].startswith(a.name) and lines[4].startswith(b.name)
    assert main(["runs", "--output-dir", str(a.parent)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith(a.name)  # one root: no "in ..." line


def test_train_with_the_defaults_uses_the_bundled_data_from_any_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dry-run"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["data"] == str(DATA_DIR / "dsl_train.jsonl") and Path(cfg["data"]).is_file()
    assert cfg["output_dir"] == str(tmp_path / "outputs" / "runs")
