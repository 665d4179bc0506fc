"""A DPO run as a user runs it: detached, killed with SIGKILL mid-run, resumed loss for loss."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from cockpit.run import events as ev
from cockpit.run.status import effective_status, read_status
from tests.conftest import TINY_ROWS, write_jsonl
from tests.e2e.test_cli_train import cli, tiny_args
from tests.helpers import wait_until


def step_losses(run_dir: Path, after_last_start: bool = False) -> dict[int, float]:
    events = ev.read_events(run_dir / "events.jsonl")
    if after_last_start:
        starts = [i for i, e in enumerate(events) if isinstance(e, ev.RunStarted)]
        events = events[starts[-1]:]
    return {e.step: e.loss for e in events if isinstance(e, ev.Step)}


def test_a_killed_dpo_run_resumes_loss_for_loss(tmp_path, tiny_model_dir):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [
        {"prompt": r["prompt"], "chosen": r["completion"], "rejected": r["completion"].replace("valve", "door")}
        for r in TINY_ROWS])
    args = tiny_args(tiny_model_dir, pairs, tmp_path / "runs", max_steps=8, stage="dpo", lr=5e-3,
                     lr_scheduler="cosine", warmup_ratio=0.2)
    straight = cli("train", "--foreground", *args, timeout=600)
    assert straight.returncode == 0, straight.stderr
    expected = step_losses(Path(straight.stdout.strip().splitlines()[-1]))
    assert list(expected) == list(range(1, 9))

    out = cli("train", *args)
    assert out.returncode == 0, out.stderr
    run_dir = Path(out.stdout.strip().splitlines()[-1])
    wait_until(lambda: (run_dir / "checkpoints" / "checkpoint-4" / "cockpit-complete").exists(),
               timeout=300, what="the checkpoint at step 4")
    os.kill(read_status(run_dir)["pid"], signal.SIGKILL)
    wait_until(lambda: effective_status(run_dir)["state"] == "failed", timeout=30, what="failed state")
    out = cli("resume", str(run_dir), "--output-dir", str(tmp_path / "runs"), "--foreground", timeout=600)
    assert out.returncode == 0, out.stderr
    assert read_status(run_dir)["state"] == "finished"
    resumed = step_losses(run_dir, after_last_start=True)
    start = min(resumed) - 1
    assert start >= 4 and max(resumed) == 8, resumed
    for step, loss in resumed.items():
        assert loss == pytest.approx(expected[step], rel=1e-4), (step, resumed, expected)
