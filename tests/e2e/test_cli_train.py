"""The CLI as a user runs it: a detached run that outlives its terminal, runs, stop, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.run import events as ev
from cockpit.run.status import effective_status, read_status
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]


def cli(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "cockpit.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=timeout)


def tiny_args(tiny_model_dir, tiny_data, runs, **extra):
    values = {"model": tiny_model_dir, "data": tiny_data, "eval_data": "none", "output_dir": runs,
              "max_steps": 40, "batch_size": 2, "max_length": 48, "lora_r": 4, "save_steps": 2,
              "sample_every": 0, "sample_count": 1, "sample_max_new_tokens": 2, "eval_split": 0.2,
              "eval_steps": 0}
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def test_detached_run_survives_its_parent_stops_gracefully_and_resumes(tmp_path, tiny_model_dir, tiny_data):
    runs = tmp_path / "runs"
    out = cli("train", *tiny_args(tiny_model_dir, tiny_data, runs))
    assert out.returncode == 0, out.stderr
    run_dir = Path(out.stdout.strip().splitlines()[-1])
    assert run_dir.parent == runs and (runs / "latest").resolve() == run_dir.resolve()
    status = read_status(run_dir)
    pid = status["pid"]
    # The trainer is in its own session: the CLI process (its parent) is gone, it goes on.
    assert os.getsid(pid) == pid
    wait_until(lambda: read_status(run_dir).get("step", 0) >= 3, what="three steps")

    listing = cli("runs", "--output-dir", str(runs), "--json")
    assert json.loads(listing.stdout)[0]["state"] == "running"

    out = cli("stop", run_dir.name, "--output-dir", str(runs), "--wait", "120")
    assert out.returncode == 0, out.stderr
    assert read_status(run_dir)["state"] == "stopped"
    events = ev.read_events(run_dir / "events.jsonl")
    stopped_at = [e for e in events if isinstance(e, ev.RunFinished)][-1].step
    assert (run_dir / "checkpoints" / f"checkpoint-{stopped_at}" / "cockpit-complete").exists()
    # the detached trainer's first word comes before its heavy imports, then each startup phase
    phases = [e.name for e in events if isinstance(e, ev.Phase)]
    phases = [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]]  # a phase may report progress
    assert phases[:4] == ["starting", "loading_tokenizer", "preparing_data", "loading_model"], phases
    assert isinstance(events[0], ev.Phase)

    out = cli("resume", run_dir.name, "--output-dir", str(runs), "--foreground", timeout=600)
    assert out.returncode == 0, out.stderr
    assert read_status(run_dir)["state"] == "finished"
    events = ev.read_events(run_dir / "events.jsonl")
    resumed = [e for e in events if isinstance(e, ev.RunStarted)][-1]
    assert resumed.step == stopped_at
    later_steps = [e.step for e in events if isinstance(e, ev.Step) and e.time > resumed.time]
    assert later_steps[0] == stopped_at + 1 and later_steps[-1] == 40
    assert "step" in out.stderr  # foreground prints progress lines
    assert "Starting the trainer (loading PyTorch and transformers)…" in out.stderr.splitlines()[:3]


def test_killed_trainer_shows_as_failed_and_resume_continues(tmp_path, tiny_model_dir, tiny_data):
    runs = tmp_path / "runs"
    out = cli("train", *tiny_args(tiny_model_dir, tiny_data, runs, max_steps=60))  # killed long before its end
    run_dir = Path(out.stdout.strip().splitlines()[-1])
    # any complete checkpoint (save_total_limit rotates the first ones away on a fast machine)
    wait_until(lambda: any((run_dir / "checkpoints").glob("checkpoint-*/cockpit-complete")),
               what="the first checkpoint")
    pid = read_status(run_dir)["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: effective_status(run_dir)["state"] == "failed", timeout=30, what="failed state")
    listing = cli("runs", "--output-dir", str(runs))
    assert "failed" in listing.stdout
    out = cli("resume", str(run_dir), "--output-dir", str(runs), "--foreground", timeout=600)
    assert out.returncode == 0, out.stderr
    assert read_status(run_dir)["state"] == "finished"


@pytest.mark.parametrize("args, fragment, code", [
    (["train", "lrr=1"], "unknown config key 'lrr'", 1),
    (["train", "method=dora"], "allowed: full | lora | int8 | qlora", 1),
    (["train", "batch_size=-4"], "'batch_size' has an impossible value", 1),
    (["train", "data=/nonexistent/train.jsonl"], "does not exist", 1),
    (["train", "data={tmp}"], "has no data files", 1),
    (["train", "--preset", "nope"], "no preset named 'nope'", 1),
    (["stop", "nothing-here", "--output-dir", "/tmp/no-runs-here"], "no run named", 1),
    (["resume", "nothing-here", "--output-dir", "/tmp/no-runs-here"], "no run named", 1),
    (["train", "--bogus-flag"], "unrecognized arguments", 2),
])
def test_bad_input_is_one_line_and_an_exit_code(args, fragment, code, tmp_path):
    out = cli(*[a.replace("{tmp}", str(tmp_path)) for a in args], cwd=tmp_path)
    assert out.returncode == code, (out.stdout, out.stderr)
    assert fragment in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 3  # argparse's usage + one line at most
    assert not (tmp_path / "outputs" / "runs" / "latest").exists(), "a failed start must not leave a run"


def test_model_path_that_is_not_a_model_is_refused_before_a_run_exists(tmp_path, tiny_data):
    not_a_model = tmp_path / "empty-model"
    not_a_model.mkdir()
    out = cli("train", f"model={not_a_model}", f"data={tiny_data}", f"output_dir={tmp_path / 'runs'}",
              "max_steps=1", "--foreground", timeout=300)
    assert out.returncode == 1
    assert "has no config.json" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_model_that_fails_to_load_fails_the_run_with_one_line(tmp_path, tiny_data):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama", "hidden_size": "wide"}')
    out = cli("train", f"model={broken}", f"data={tiny_data}", f"output_dir={tmp_path / 'runs'}",
              "max_steps=1", "--foreground", timeout=300)
    assert out.returncode == 1
    run_dir = Path(out.stdout.strip().splitlines()[0])
    status = read_status(run_dir)
    assert status["state"] == "failed" and status["error"] and "\n" not in status["error"]
    assert "Traceback" not in out.stderr
    assert not (run_dir / "model").exists()
    print(status["error"], "->", status["advice"])


def test_a_second_signal_ends_the_trainer_at_once_and_the_run_reads_stopped(tmp_path, tiny_model_dir, tiny_data):
    runs = tmp_path / "runs"
    out = cli("train", *tiny_args(tiny_model_dir, tiny_data, runs, max_steps=400, save_steps=400))
    run_dir = Path(out.stdout.strip().splitlines()[-1])
    wait_until(lambda: read_status(run_dir).get("step", 0) >= 2, what="two steps")
    pid = read_status(run_dir)["pid"]
    # Frozen while both arrive, so the second cannot come after a quick graceful stop (two
    # of one kind would merge into one pending signal: SIGTERM, then Ctrl+C's SIGINT).
    os.kill(pid, signal.SIGSTOP)
    os.kill(pid, signal.SIGTERM)  # the first asks for a checkpoint at the next step boundary...
    os.kill(pid, signal.SIGINT)  # ...the second does not wait for it
    os.kill(pid, signal.SIGCONT)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
               open(f"/proc/{pid}/stat").read().split()[2] == "Z", timeout=30, what="the trainer to exit")
    status = read_status(run_dir)
    assert status["state"] == "stopped" and "at once" in status["advice"]
    assert not list((run_dir / "checkpoints").glob("checkpoint-*")), "no save was waited for"
    assert effective_status(run_dir)["state"] == "stopped"
