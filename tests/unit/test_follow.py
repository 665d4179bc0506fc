"""cockpit.run.follow: folding events into what a viewer shows, and following a live run."""

from __future__ import annotations

import json
import math
import os
import threading
import time

from cockpit.run import events as ev
from cockpit.run.plain import format_event
from cockpit.run.follow import (
    RunFollower,
    RunState,
    Series,
    fmt_age,
    fmt_bytes,
    fmt_duration,
    fmt_num,
    follow,
    phase_line,
    summary_line,
)
from cockpit.run.status import write_status
from tests.tui.conftest import CPU_RUN, FIXTURE_RUNS, GPU_RUN


def test_real_cpu_recording_folds_into_a_stopped_run():
    follower = RunFollower(FIXTURE_RUNS / CPU_RUN)
    events = follower.poll()
    s = follower.state
    assert len(events) == 18 and follower.done
    assert (s.state, s.step, s.total_steps, s.model, s.method) == (
        "stopped", 11, 108, "HuggingFaceTB/SmolLM2-135M-Instruct", "lora")
    assert len(s.series["loss"]) == 11 and math.isclose(s.best_loss, min(s.series["loss"].values))
    assert len(s.samples) == 3
    assert all(v.baseline and v.step == 0 for v in s.samples.values())
    assert s.checkpoints == [(11, "checkpoints/checkpoint-11")]
    assert s.mem[0]["device"] == "cpu" and s.mem[0]["rss"] > 0


def test_gpu_run_has_every_panel_filled():
    follower = RunFollower(FIXTURE_RUNS / GPU_RUN)
    follower.poll()
    s = follower.state
    assert s.state == "finished" and s.progress == 1.0
    assert len(s.series["eval_loss"]) == 6 and s.best_eval_loss < s.series["eval_loss"].values[0]
    assert s.gpus[0]["util"] >= 90 and s.mem[0]["device"] == "cuda:0"
    assert s.warning_counts == {"info": 1, "grad_spike": 1}
    sample = next(iter(s.samples.values()))
    assert sample.step == 120 and sample.baseline != sample.output
    assert s.summary["final_loss"] == s.loss


def test_series_stays_bounded_and_keeps_its_shape():
    series = Series(limit=64)
    for step in range(1, 10_001):
        series.add(step, 10.0 / step)
    series.add(10_001, float("nan"))  # not stored
    assert len(series) <= 64 and series.count == 10_000
    assert series.steps == sorted(series.steps) and series.steps[-1] == 10_000
    assert series.values[0] > series.values[-1]


def test_resumed_run_replaces_the_steps_after_its_checkpoint():
    state = RunState()
    state.apply_all([ev.RunStarted(total_steps=10), *(ev.Step(step=i, loss=5.0 - i) for i in range(1, 7)),
                     ev.RunFinished(step=6, state="stopped"),
                     ev.RunStarted(step=4, total_steps=10, resumed_from="checkpoints/checkpoint-4"),
                     ev.Step(step=5, loss=0.5)])
    assert state.state == "running" and state.resumes == 1 and not state.is_final
    assert state.series["loss"].steps == [1, 2, 3, 4, 5] and state.series["loss"].last == 0.5


def test_error_event_and_unknown_events():
    state = RunState()
    state.apply_all([ev.RunStarted(total_steps=3), ev.UnknownEvent(raw={"type": "future_thing"}),
                     ev.Step(step=1, loss="nan"), ev.Error(step=1, message="loss is NaN", advice="lower lr")])
    assert state.state == "failed" and state.error == "loss is NaN" and state.events_seen == 4
    assert math.isnan(state.loss) and len(state.series["loss"]) == 0  # NaN is not charted
    assert state.warnings[-1].kind == "error"


def test_status_tells_what_events_cannot(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_status(run, state="starting", pid=None, total_steps=7, model="m", method="lora")
    follower = RunFollower(run)
    assert follower.poll() == [] and follower.state.total_steps == 7 and follower.state.model == "m"
    write_status(run, state="running", pid=2**22 + 12345)  # a pid that does not exist: the trainer died
    follower.poll()
    assert follower.state.state == "failed" and "resume" in follower.state.advice and follower.done


def test_follow_replays_then_follows_a_live_run_until_it_ends(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_status(run, state="running", pid=os.getpid())  # a live "trainer"
    sink = ev.JsonlSink(run / "events.jsonl")
    sink.emit(ev.RunStarted(total_steps=20))
    batches: list[int] = []

    def trainer():
        for step in range(1, 21):
            sink.emit(ev.Step(step=step, loss=1.0 / step))
            time.sleep(0.01)
        sink.emit(ev.RunFinished(step=20, state="finished", summary={"final_loss": 0.05}))
        write_status(run, state="finished")

    thread = threading.Thread(target=trainer)
    thread.start()
    state = follow(run, lambda events, s: batches.append(len(events)), interval=0.05)
    thread.join()
    assert state.state == "finished" and state.step == 20 and sum(batches) == 22
    assert len(batches) < 22  # batched: fewer deliveries than events


def test_partial_last_line_waits_for_its_end(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    line = json.dumps(ev.Step(step=1, loss=2.0).to_dict())
    (run / "events.jsonl").write_text(line[:10], encoding="utf-8")
    follower = RunFollower(run)
    assert follower.poll() == []
    with open(run / "events.jsonl", "a", encoding="utf-8") as fh:
        fh.write(line[10:] + "\n")
    assert [e.step for e in follower.poll()] == [1]


def test_words():
    assert fmt_duration(75) == "1m15s" and fmt_duration(3 * 3600 + 120) == "3h02m" and fmt_duration(None) == "?"
    assert fmt_bytes(1536 * 2**20) == "1.5 GiB" and fmt_bytes(512) == "512 B"
    assert fmt_num(0.0002) == "2.0e-04" and fmt_num(1.23456) == "1.235" and fmt_num(None) == "-"
    assert fmt_age(100.0, 100.0 + 7200) == "2h ago" and fmt_age(None, 1.0) == "-"
    assert summary_line({"final_loss": 0.31, "duration_s": 61, "tokens": 1234}) == \
        "final loss 0.31, took 1m01s, 1,234 tokens"


def test_format_event_lines():
    line = format_event(ev.Step(step=3, loss=1.5, grad_norm=0.9, lr=2e-4, tokens_per_s=1234.0, eta_s=65), 10)
    assert line == "step 3/10  loss 1.5  grad 0.9  lr 2.0e-04  1,234 tok/s  eta 1m05s"
    assert "grad_spike" in format_event(ev.Warning(step=5, kind="grad_spike", message="m", advice="a"))
    assert format_event(ev.RunFinished(step=9, state="stopped", summary={})) == "run stopped at step 9: no summary"
    assert "gpu0 97%" in format_event(ev.Gpu(devices=[{"util": 97, "mem_used": 1, "mem_total": 2}]))
    assert format_event(ev.UnknownEvent(step=2, raw={"type": "later"})) == "step 2  (later event)"


def test_phases_fold_into_the_current_one_until_steps_arrive():
    state = RunState()
    state.apply_all([ev.Phase(time=100.0, name="loading_model", message="Loading the model m (fp32, CPU)"),
                     ev.RunStarted(time=110.0, total_steps=10),
                     ev.Phase(time=111.0, name="baseline_samples", message="Asking 1 of 2", progress=0.0),
                     ev.Phase(time=115.0, name="baseline_samples", message="Asking 2 of 2", progress=0.5)])
    phase = state.current_phase
    # the same phase moving on keeps its clock: 2 of 2 started with 1 of 2
    assert (phase.name, phase.message, phase.progress, phase.started) == ("baseline_samples", "Asking 2 of 2", 0.5,
                                                                          111.0)
    assert phase_line(phase, now=123.0) == "Asking 2 of 2… 50%, 12s"
    state.apply(ev.Step(step=1, loss=2.0))
    assert state.current_phase is None and state.state == "running"
    state.apply(ev.Phase(step=1, time=130.0, name="baseline_samples", message="Asking the base model"))
    assert state.current_phase.started == 130.0  # a new phase after steps: its own clock
    state.apply(ev.RunFinished(step=1, state="stopped"))
    assert state.phase is None and state.current_phase is None


def test_phase_events_with_missing_or_broken_fields_are_read():
    """A trainer older or newer than this viewer: fields missing, of the wrong type, out of range."""
    for raw, name, message, progress in [
        ({"type": "phase"}, "working", "Working", None),
        ({"type": "phase", "name": "loading_model"}, "loading_model", "Loading model", None),
        ({"type": "phase", "name": 7, "message": ["x"], "progress": "half", "extra": 1}, "7", "['x']", None),
        ({"type": "phase", "message": "Reading the data...", "progress": 3}, "working", "Reading the data", 1.0),
        ({"type": "phase", "message": "m", "progress": "nan"}, "working", "m", None),
    ]:
        state = RunState()
        state.apply(ev.parse_event(raw))
        view = state.current_phase
        assert (view.name, view.message, view.progress) == (name, message, progress), raw
        assert view.started is None and phase_line(view, now=5.0).startswith(message + "…")


def test_a_dead_trainer_leaves_no_phase_on_screen(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_status(run, state="starting", pid=2**22 + 12345)  # gone while it was loading
    ev.JsonlSink(run / "events.jsonl").emit(ev.Phase(name="loading_model", message="Loading"))
    follower = RunFollower(run)
    follower.poll()
    assert follower.state.state == "failed" and follower.state.current_phase is None


def test_a_resumed_session_shows_its_phases_after_the_end_of_the_last():
    state = RunState()
    state.apply_all([ev.RunStarted(time=1.0, total_steps=10), ev.Step(step=3, time=2.0, loss=1.0),
                     ev.RunFinished(step=3, time=3.0, state="stopped")])
    state.apply(ev.Phase(time=50.0, name="loading_model", message="Loading"))
    state.merge_status({"state": "starting", "updated": 49.0})  # what the resumed trainer wrote first
    assert state.state == "starting" and not state.is_final and state.current_phase.name == "loading_model"
    state.apply(ev.RunStarted(step=3, time=60.0, total_steps=10, resumed_from="checkpoints/checkpoint-3"))
    assert state.state == "running" and state.current_phase.name == "loading_model"


def test_a_late_base_answer_fills_the_base_column_and_keeps_the_newer_answer():
    state = RunState()
    state.apply_all([ev.Step(step=1, loss=1.0), ev.Sample(step=0, prompt="p", output="base", baseline="base")])
    view = state.samples["p"]
    assert (view.baseline, view.output, view.step) == ("base", "base", 0)  # as when it came before training
    state = RunState()
    state.apply_all([ev.Sample(step=30, prompt="p", output="new"), ev.Sample(step=0, prompt="p", output="base",
                                                                             baseline="base")])
    view = state.samples["p"]
    assert (view.baseline, view.output, view.step) == ("base", "new", 30)


def test_format_phase_and_base_answer_lines():
    assert format_event(ev.Phase(name="loading_model", message="Loading the model m (fp32, CPU)"), 10) == \
        "Loading the model m (fp32, CPU)…"
    assert format_event(ev.Phase(step=1, name="baseline_samples", message="Asking 2 of 3", progress=1 / 3), 10) == \
        "step 1/10  Asking 2 of 3… 33%"
    assert format_event(ev.Sample(step=0, prompt="p", output="b", baseline="b"), 10) == "base model  sample 'p' -> 'b'"
    assert format_event(ev.Sample(step=5, prompt="p", output="o"), 10) == "step 5/10  sample 'p' -> 'o'"
