"""Kill -9 at random moments, also in the middle of a checkpoint save, and resume each time:
the run ends where an uninterrupted one ends, step for step, loss for loss."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from cockpit.run import events as ev
from cockpit.training.callbacks import CHECKPOINT_MARKER
from cockpit.run.status import effective_status, pid_alive, read_status
from tests.e2e.test_cli_train import cli, tiny_args
from tests.helpers import wait_until

STEPS = 16


def settings(runs: Path, tiny_model_dir, tiny_data, steps: int = STEPS) -> list[str]:
    # a checkpoint at every step: saves take a good share of the time, so kills land in them
    return tiny_args(tiny_model_dir, tiny_data, runs, max_steps=steps, save_steps=1, save_total_limit=3)


def losses(run_dir: Path) -> dict[int, float]:
    """Loss per step; a step trained again after a resume keeps its newest value."""
    return {e.step: e.loss for e in ev.read_events(run_dir / "events.jsonl") if isinstance(e, ev.Step)}


def incomplete_checkpoint(run_dir: Path) -> Path | None:
    for p in (run_dir / "checkpoints").glob("checkpoint-*"):
        if not (p / CHECKPOINT_MARKER).exists():
            return p
    return None


def kill_trainer(run_dir: Path) -> bool:
    pid = read_status(run_dir).get("pid")
    if not pid or not pid_alive(int(pid)):
        return False
    os.kill(int(pid), signal.SIGKILL)
    wait_until(lambda: not pid_alive(int(pid)), timeout=30, what="the trainer to die")
    return True


def kill_during_save(run_dir: Path, timeout: float = 60.0) -> bool:
    """Poll fast for a checkpoint directory without its marker and kill the trainer then."""
    deadline = time.time() + timeout
    while time.time() < deadline and effective_status(run_dir).get("state") in ("starting", "running"):
        if incomplete_checkpoint(run_dir) is not None:
            return kill_trainer(run_dir)
        time.sleep(0.005)
    return False


def run_with_kills(tmp_path, tiny_model_dir, tiny_data, kills: int, seed: int,
                   steps: int = STEPS) -> tuple[Path, dict]:
    rnd = random.Random(seed)
    runs = tmp_path / "killed"
    out = cli("train", *settings(runs, tiny_model_dir, tiny_data, steps))
    assert out.returncode == 0, out.stderr
    run_dir = Path(out.stdout.strip().splitlines()[-1])
    counts = {"kills": 0, "during_save": 0, "resumes": 0}
    while counts["kills"] < kills:
        if counts["kills"] % 3 == 1:  # every third kill aims at a save in progress
            killed = kill_during_save(run_dir)
            if killed and incomplete_checkpoint(run_dir) is not None:
                counts["during_save"] += 1
        else:
            time.sleep(rnd.uniform(0.3, 4.0))  # anywhere: loading, training, saving, sampling
            killed = kill_trainer(run_dir)
        if not killed or effective_status(run_dir)["state"] == "finished":
            break  # the run ended before this kill (or while it landed)
        counts["kills"] += 1
        # a dead pid with a non-final state is shown as failed
        assert effective_status(run_dir)["state"] == "failed"
        assert "failed" in cli("runs", "--output-dir", str(runs)).stdout
        half = incomplete_checkpoint(run_dir)
        out = cli("resume", run_dir.name, "--output-dir", str(runs))
        assert out.returncode == 0, out.stderr
        counts["resumes"] += 1
        if half is not None:
            # a half-written checkpoint is never chosen: the resumed session starts below it
            step = int(half.name.split("-")[1])
            wait_until(lambda: any(isinstance(e, ev.RunStarted) and e.time > time.time() - 600
                                   for e in ev.read_events(run_dir / "events.jsonl")[-3:]) or
                       effective_status(run_dir)["state"] != "starting", timeout=120, what="the resumed session")
            started = [e for e in ev.read_events(run_dir / "events.jsonl") if isinstance(e, ev.RunStarted)]
            if started and started[-1].resumed_from:
                assert int(started[-1].resumed_from.rsplit("-", 1)[1]) < step
    wait_until(lambda: effective_status(run_dir)["state"] in ("finished", "failed"), timeout=600,
               what="the run to end")
    return run_dir, counts


def check_same_as_uninterrupted(tmp_path, tiny_model_dir, tiny_data, run_dir: Path, steps: int = STEPS) -> None:
    status = read_status(run_dir)
    assert status["state"] == "finished", (run_dir / "train.log").read_text()[-3000:]
    assert status["step"] == steps
    assert (run_dir / "model" / "adapter_model.safetensors").exists()
    out = cli("train", "--foreground", *settings(tmp_path / "whole", tiny_model_dir, tiny_data, steps), timeout=600)
    assert out.returncode == 0, out.stderr
    whole = Path(out.stdout.strip().splitlines()[0])
    a, b = losses(run_dir), losses(whole)
    assert sorted(a) == sorted(b) == list(range(1, steps + 1))
    for step in a:
        assert abs(a[step] - b[step]) <= 1e-4 * abs(b[step]), (step, a[step], b[step])
    events = ev.read_events(run_dir / "events.jsonl")
    for started in (e for e in events if isinstance(e, ev.RunStarted) and e.resumed_from):
        # every session started from a checkpoint that had finished saving, at its step
        assert started.step == int(started.resumed_from.rsplit("-", 1)[1])


def test_three_kills_one_during_a_save_end_like_an_uninterrupted_run(tmp_path, tiny_model_dir, tiny_data):
    run_dir, counts = run_with_kills(tmp_path, tiny_model_dir, tiny_data, kills=3, seed=7)
    print("kills survived:", counts)
    assert counts["kills"] >= 2
    check_same_as_uninterrupted(tmp_path, tiny_model_dir, tiny_data, run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_repeated_random_kills_end_like_an_uninterrupted_run(tmp_path, tiny_model_dir, tiny_data, seed):
    run_dir, counts = run_with_kills(tmp_path, tiny_model_dir, tiny_data, kills=10, seed=seed, steps=80)
    print("kills survived:", counts)
    assert counts["kills"] >= 8
    check_same_as_uninterrupted(tmp_path, tiny_model_dir, tiny_data, run_dir, steps=80)


def test_a_partial_last_event_line_does_not_swallow_the_next_sessions_first_event(tmp_path):
    path = tmp_path / "events.jsonl"
    sink = ev.JsonlSink(path)
    sink.emit(ev.Step(step=1, loss=2.0))
    sink.close()
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"type": "step", "step": 2, "lo')  # killed mid-write
    sink = ev.JsonlSink(path)
    sink.emit(ev.RunStarted(step=1, resumed_from="checkpoints/checkpoint-1"))
    sink.close()
    events = ev.read_events(path)
    assert [type(e).__name__ for e in events] == ["Step", "RunStarted"]
