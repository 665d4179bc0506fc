"""The training recipe on a tiny random model: every method trains, events follow the
contract, a stopped run resumes exactly where it stopped."""

from __future__ import annotations

import json
import math

import pytest

from cockpit.run import events as ev
from cockpit.run.launch import prepare_run
from cockpit.run.status import read_status
from cockpit.training.trainer import TrainingRun, newest_complete_checkpoint


def run(cfg, sink=None, resume=False, run_dir=None, stop=None):
    run_dir = run_dir or prepare_run(cfg)
    sink = sink or ev.ListSink()
    state = TrainingRun(run_dir, resume=resume, sink=sink, stop=stop).execute()
    return run_dir, sink, state


class Recorded(ev.ListSink):
    """Collects the events and writes them to the run's events.jsonl, as the trainer's own sink
    does (what a resume reads back, e.g. which base answers were given)."""

    def __init__(self, run_dir):
        super().__init__()
        self.file = ev.JsonlSink(run_dir / "events.jsonl")

    def emit(self, event):
        super().emit(event)
        self.file.emit(event)


def losses(sink):
    return {e.step: e.loss for e in sink.of_type(ev.Step)}


def test_lora_loss_decreases_and_adapter_weights_change(tiny_config):
    from safetensors.torch import load_file

    run_dir, sink, state = run(tiny_config(max_steps=8))
    assert state == "finished", read_status(run_dir)
    curve = losses(sink)
    assert list(curve) == list(range(1, 9))
    assert curve[8] < curve[1] - 0.2, curve
    adapter = load_file(str(run_dir / "model" / "adapter_model.safetensors"))
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert lora_b and all(float(t.abs().max()) > 0 for t in lora_b)  # B starts at zero: nonzero means trained
    assert (run_dir / "model" / "tokenizer.json").exists()
    status = read_status(run_dir)
    assert status["state"] == "finished" and status["step"] == 8
    assert list((run_dir / "logs").rglob("events.out.tfevents*")), "TensorBoard logs are missing"


def test_full_finetune_trains_every_weight(tiny_config):
    run_dir, sink, state = run(tiny_config(method="full", max_steps=4, lr=1e-3))
    assert state == "finished"
    curve = losses(sink)
    assert curve[4] < curve[1]
    info = [e for e in sink.of_type(ev.Warning) if e.kind == "info"][0]
    assert "(100.00%)" in info.message
    assert (run_dir / "model" / "model.safetensors").exists()


@pytest.mark.parametrize("method", ["qlora", "int8"])
def test_quantized_methods_run_real_steps_on_cpu(tiny_config, method):
    run_dir, sink, state = run(tiny_config(method=method, max_steps=2, save_steps=10))
    assert state == "finished", read_status(run_dir)
    steps = sink.of_type(ev.Step)
    assert [e.step for e in steps] == [1, 2]
    assert all(math.isfinite(e.loss) and e.grad_norm is not None for e in steps)


def test_events_follow_the_contract(tiny_config):
    run_dir, sink, state = run(tiny_config(max_steps=4, eval_steps=2, sample_every=2, save_steps=2))
    assert state == "finished"
    types = {e.type for e in sink.events}
    assert {"run_started", "step", "eval", "sample", "checkpoint", "run_finished", "warning"} <= types
    required = {
        "run_started": {"config", "model", "method", "total_steps", "hardware", "estimate"},
        "phase": {"name", "message", "progress"},
        "step": {"epoch", "loss", "grad_norm", "lr", "tokens_per_s", "elapsed_s", "eta_s", "mem"},
        "eval": {"eval_loss", "metrics"},
        "sample": {"prompt", "output", "baseline"},
        "warning": {"kind", "message", "advice"},
        "checkpoint": {"path"},
        "run_finished": {"state", "summary"},
    }
    for event in sink.events:
        data = json.loads(json.dumps(event.to_dict(), allow_nan=False))  # valid strict JSON
        assert {"type", "time", "step"} <= set(data)
        assert required[data["type"]] <= set(data), data["type"]
    first_samples = [e for e in sink.of_type(ev.Sample) if e.step == 0]
    assert first_samples and all(e.baseline is not None for e in first_samples)
    assert all(e.baseline is None for e in sink.of_type(ev.Sample) if e.step > 0)
    step = sink.of_type(ev.Step)[-1]
    assert step.tokens_per_s > 0 and step.mem and step.mem[-1]["rss"] > 0
    assert sink.of_type(ev.RunStarted)[0].total_steps == 4
    assert sink.of_type(ev.RunFinished)[-1].summary["tokens"] > 0


def test_stopped_run_resumes_at_the_saved_step_with_the_same_curve(tiny_config):
    """Stop after step 3 (SIGTERM's path: the stop flag), resume, and compare with a run
    that was never interrupted: same steps, same losses (optimizer, scheduler, RNG and data
    order restored)."""
    from cockpit.training.callbacks import StopFlag

    cfg = tiny_config(max_steps=6, save_steps=100, lr_scheduler="cosine", warmup_ratio=0.2)
    _, straight, _ = run(cfg)

    stop = StopFlag()

    class StopAtThree(Recorded):
        def emit(self, event):
            super().emit(event)
            if isinstance(event, ev.Step) and event.step == 3:
                stop.requested = True

    run_dir = prepare_run(cfg)
    first = StopAtThree(run_dir)
    _, _, state = run(cfg, sink=first, stop=stop, run_dir=run_dir)
    assert state == "stopped"
    stopped_at = first.of_type(ev.RunFinished)[-1].step
    assert 3 <= stopped_at < 6
    assert newest_complete_checkpoint(run_dir).name == f"checkpoint-{stopped_at}"
    assert read_status(run_dir)["state"] == "stopped"

    second = ev.ListSink()
    _, _, state = run(cfg, sink=second, resume=True, run_dir=run_dir)
    assert state == "finished"
    started = second.of_type(ev.RunStarted)[0]
    assert started.step == stopped_at and started.resumed_from == f"checkpoints/checkpoint-{stopped_at}"
    resumed = losses(second)
    assert list(resumed) == list(range(stopped_at + 1, 7))
    expected = losses(straight)
    for step, loss in resumed.items():
        assert loss == pytest.approx(expected[step], rel=1e-4), (step, resumed, expected)
    assert not [e for e in second.of_type(ev.Sample) if e.baseline is not None]  # baseline only once


def test_half_written_checkpoint_is_never_chosen(tmp_path):
    (tmp_path / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    (tmp_path / "checkpoints" / "checkpoint-2").mkdir()
    (tmp_path / "checkpoints" / "checkpoint-2" / "cockpit-complete").write_text("2\n")
    assert newest_complete_checkpoint(tmp_path).name == "checkpoint-2"
    assert newest_complete_checkpoint(tmp_path / "nothing") is None


def _callback(tmp_path, sink):
    from cockpit.training.callbacks import EventCallback, StopFlag, TokenCounter

    (tmp_path / "status.json").write_text("{}")
    return EventCallback(sink, tmp_path, TokenCounter(), StopFlag(), None, 0, patience=2, start_step=0)


def _hook_args(step):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    state = TrainerState()
    state.global_step, state.max_steps, state.epoch = step, 10, 1.0
    return TrainingArguments(output_dir="unused", report_to=[]), state, TrainerControl()


def test_nan_loss_stops_without_saving_and_gives_the_checklist_advice(tmp_path):
    sink = ev.ListSink()
    cb = _callback(tmp_path, sink)
    args, state, control = _hook_args(3)
    cb.on_log(args, state, control, logs={"loss": 2.0, "grad_norm": 1.0, "learning_rate": 1e-4})
    assert not control.should_training_stop
    state.global_step = 4
    cb.on_log(args, state, control, logs={"loss": float("nan"), "grad_norm": 1.0, "learning_rate": 1e-4})
    assert control.should_training_stop and not control.should_save
    assert cb.failure and "lower the learning rate tenfold" in cb.failure[1]
    assert [w.kind for w in sink.of_type(ev.Warning)] == ["nan"]
    assert json.loads(json.dumps(sink.of_type(ev.Step)[-1].to_dict()))["loss"] == "nan"  # strict JSON on disk


def test_grad_and_loss_spikes_warn_without_stopping(tmp_path):
    sink = ev.ListSink()
    cb = _callback(tmp_path, sink)
    args, state, control = _hook_args(1)
    for step, loss, grad in [(1, 1.0, 1.0), (2, 1.0, 250.0), (3, 3.5, 1.0)]:
        state.global_step = step
        cb.on_log(args, state, control, logs={"loss": loss, "grad_norm": grad, "learning_rate": 1e-4})
    kinds = [w.kind for w in sink.of_type(ev.Warning)]
    assert kinds == ["grad_spike", "loss_spike"]
    assert not control.should_training_stop


def test_early_stopping_after_patience_evaluations_without_improvement(tmp_path):
    sink = ev.ListSink()
    cb = _callback(tmp_path, sink)
    args, state, control = _hook_args(1)
    for loss in (2.0, 1.5, 1.6, 1.7):
        cb.on_log(args, state, control, logs={"eval_loss": loss})
    assert control.should_training_stop
    assert cb.best_eval == 1.5
    assert [w.kind for w in sink.of_type(ev.Warning)] == ["early_stop"]


def test_eta_after_a_resume_comes_from_this_sessions_speed(tmp_path):
    """100 steps done before the resume, 10 in this session's 10 s: 1 s a step for the 90
    left. Counting the old steps as this session's would say about 8 s."""
    import time

    from cockpit.training.callbacks import EventCallback, StopFlag, TokenCounter

    cb = EventCallback(ev.ListSink(), tmp_path, TokenCounter(), StopFlag(), None, 0, 0, start_step=100)
    cb.session_t0 = time.time() - 10.0
    assert cb._eta(110, 200) == pytest.approx(90.0, rel=0.05)
    assert cb._eta(100, 200) is None  # no step of this session yet: no speed to tell


def test_a_full_disk_during_a_save_fails_the_run_with_the_path_and_no_final_model(tiny_config, monkeypatch):
    """ENOSPC from the optimizer's save (the biggest file of a LoRA checkpoint)."""
    import errno

    import torch

    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if str(f).endswith("optimizer.pt"):
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    cfg = tiny_config(max_steps=4, save_steps=2)
    run_dir, sink, state = run(cfg)
    assert state == "failed"
    status = read_status(run_dir)
    assert status["state"] == "failed"
    assert status["error"].startswith("the disk is full while writing ") and "optimizer.pt" in status["error"]
    assert "free some space" in status["advice"]
    assert sink.of_type(ev.Error) and "\n" not in sink.of_type(ev.Error)[0].message
    assert newest_complete_checkpoint(run_dir) is None  # the interrupted save is not a checkpoint
    assert not (run_dir / "model").exists()


def test_flat_eval_loss_and_a_hot_idle_gpu_reach_the_event_log(tmp_path):
    """The checklist's detectors are wired into the callback: evaluations and GPU polls go
    through them and come out as warning events with the checklist's advice."""
    from types import SimpleNamespace

    from cockpit.training.advice import ADVICE

    sink = ev.ListSink()
    cb = _callback(tmp_path, sink)
    cb.patience = 0  # no early stop: the flat rule alone
    readings = [{"index": 0, "util": 12, "temp_c": 91, "mem_used": 1, "mem_total": 10}]
    cb._gpu = SimpleNamespace(available=True, read=lambda: readings)
    args, state, control = _hook_args(1)
    for i, loss in enumerate((2.300, 2.299, 2.298, 2.297)):
        state.global_step = i + 1
        cb._last_gpu = 0.0  # a poll at every log
        cb.on_log(args, state, control, logs={"eval_loss": loss})
    warnings = sink.of_type(ev.Warning)
    assert sorted(w.kind for w in warnings) == ["gpu_hot", "gpu_idle", "loss_flat"]
    assert {w.kind: w.advice for w in warnings} == {k: ADVICE[k] for k in ("gpu_hot", "gpu_idle", "loss_flat")}
    assert len(sink.of_type(ev.Gpu)) == 4


def test_a_run_starved_by_slow_data_loading_warns_slow_io(tiny_config, monkeypatch):
    """A real training run whose batches take longer to build than the steps take to train
    (a collator slowed down, as a network disk would): the slow-data warning arrives."""
    import functools
    import time

    import cockpit.training.callbacks
    from cockpit.training.advice import ADVICE
    from cockpit.training.checklist import Checklist
    from cockpit.data.tokenize import DataCollator

    build = DataCollator.__call__

    def slow(self, features):
        time.sleep(0.15)
        return build(self, features)

    monkeypatch.setattr(DataCollator, "__call__", slow)
    monkeypatch.setattr(cockpit.training.callbacks, "Checklist", functools.partial(Checklist, io_window=4, io_warmup=1))
    _, sink, _ = run(tiny_config(max_steps=7, save_steps=100))
    slow_io = [w for w in sink.of_type(ev.Warning) if w.kind == "slow_io"]
    assert len(slow_io) == 1 and slow_io[0].advice == ADVICE["slow_io"]
    assert "waiting for data took" in slow_io[0].message


def test_a_run_with_fast_data_does_not_warn_slow_io(tiny_config, monkeypatch):
    import functools

    import cockpit.training.callbacks
    from cockpit.training.checklist import Checklist

    monkeypatch.setattr(cockpit.training.callbacks, "Checklist", functools.partial(Checklist, io_window=4, io_warmup=1))
    _, sink, _ = run(tiny_config(max_steps=7, save_steps=100))
    assert not [w for w in sink.of_type(ev.Warning) if w.kind in ("slow_io", "mem_high")]
