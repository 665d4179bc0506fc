"""Two data-parallel processes on the CPU (gloo): `train --num-processes 2` through accelerate
launch, rank 0 alone writing events, status and checkpoints, a graceful stop that reaches
every rank, and a resume that relaunches the same layout and lands on the same losses."""

from __future__ import annotations

from pathlib import Path

from cockpit.run import events as ev
from cockpit.run.status import read_status
from tests.e2e.test_cli_train import cli, tiny_args
from tests.helpers import wait_until

STEPS = 80  # long enough that the stop lands before the end (the tiny model trains fast; 40 raced once)


def losses(run_dir: Path) -> dict[int, float]:
    """The loss at each step; a step replayed after a resume keeps its newest value."""
    return {e.step: e.loss for e in ev.read_events(run_dir / "events.jsonl") if isinstance(e, ev.Step)}


def start(tmp_path, tiny_model_dir, tiny_data, name):
    runs = tmp_path / name
    out = cli("train", "--num-processes", "2",
              *tiny_args(tiny_model_dir, tiny_data, runs, max_steps=STEPS, batch_size=2, eval_steps=6))
    assert out.returncode == 0, out.stderr
    return runs, Path(out.stdout.strip().splitlines()[-1])


def test_two_gloo_processes_train_stop_and_resume_like_one_uninterrupted_run(tmp_path, tiny_model_dir, tiny_data):
    runs, run_dir = start(tmp_path, tiny_model_dir, tiny_data, "stopped")
    wait_until(lambda: read_status(run_dir).get("step", 0) >= 4, timeout=180, what="four DDP steps")
    out = cli("stop", run_dir.name, "--output-dir", str(runs), "--wait", "120")
    assert out.returncode == 0, out.stderr
    status = read_status(run_dir)
    assert status["state"] == "stopped" and status["num_processes"] == 2
    stopped_at = status["step"]
    ckpt = run_dir / "checkpoints" / f"checkpoint-{stopped_at}"
    # one RNG state per rank: the proof that two processes trained
    assert {p.name for p in ckpt.glob("rng_state*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    assert (ckpt / "cockpit-complete").exists()
    events = ev.read_events(run_dir / "events.jsonl")
    steps = [e.step for e in events if isinstance(e, ev.Step)]
    assert steps == list(range(1, stopped_at + 1)), "rank 0 alone writes events: each step exactly once"
    assert sum(isinstance(e, ev.RunStarted) for e in events) == 1
    # rank 0 alone asks the base model (adapters switched off, after the first step event), once
    baselines = [i for i, e in enumerate(events) if isinstance(e, ev.Sample) and e.baseline is not None]
    first_step = next(i for i, e in enumerate(events) if isinstance(e, ev.Step))
    assert len(baselines) == 1 and baselines[0] > first_step
    assert [e.name for e in events if isinstance(e, ev.Phase)][0] == "starting"

    out = cli("resume", run_dir.name, "--output-dir", str(runs), "--foreground", timeout=600)
    assert out.returncode == 0, out.stderr
    printed = [line.split()[1] for line in out.stderr.splitlines() if line.startswith("step ")]
    # the new session only: no replay of the steps before the stop
    assert printed and f"1/{STEPS}" not in printed, printed
    assert f"{STEPS}/{STEPS}" in printed
    status = read_status(run_dir)
    assert status["state"] == "finished" and status["step"] == STEPS and status["num_processes"] == 2
    events = ev.read_events(run_dir / "events.jsonl")
    resumed = [e for e in events if isinstance(e, ev.RunStarted)][-1]
    assert resumed.resumed_from == f"checkpoints/checkpoint-{stopped_at}"
    assert [e.step for e in events if isinstance(e, ev.Step) and e.time > resumed.time] == \
        list(range(stopped_at + 1, STEPS + 1))
    assert sum(isinstance(e, ev.Sample) and e.baseline is not None for e in events) == 1  # none on resume
    assert (run_dir / "model" / "adapter_model.safetensors").exists()
    # the world size counts in the tokens: both ranks' batches are in the total
    tokens = [e.tokens for e in events if isinstance(e, ev.Step)]
    assert tokens == sorted(tokens) and tokens[-1] > tokens[0] * (STEPS - 1)

    _, whole = start(tmp_path, tiny_model_dir, tiny_data, "whole")
    wait_until(lambda: read_status(whole).get("state") in ("finished", "failed"), timeout=300, what="the whole run")
    assert read_status(whole)["state"] == "finished", (whole / "train.log").read_text()[-2000:]
    a, b = losses(run_dir), losses(whole)
    assert sorted(a) == sorted(b) == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):
        assert abs(a[step] - b[step]) <= 1e-4 * abs(b[step]), (step, a[step], b[step])
