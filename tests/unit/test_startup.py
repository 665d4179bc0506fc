"""A visible start: the trainer says what it does before its first step (``phase`` events),
and with adapters the base model's answers no longer hold up the first step."""

from __future__ import annotations

import pytest

from cockpit.run import events as ev
from cockpit.training.callbacks import StopFlag
from cockpit.run.launch import prepare_run
from cockpit.training.trainer import TrainingRun
from tests.unit.test_train import Recorded

PROBES = {"sample_count": 2, "sample_max_new_tokens": 8}


def base_answers(model_dir, prompts, max_new_tokens):
    """What the untrained model says: loaded afresh, no adapter anywhere."""
    from transformers import AutoModelForCausalLM

    from cockpit.models.generate import generate
    from cockpit.training.recipe import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    return generate(model, load_tokenizer(model_dir), prompts, max_new_tokens)


def names(events):
    return [e.name for e in events if isinstance(e, ev.Phase)]


def test_lora_reports_each_phase_first_and_gives_the_base_answers_after_the_first_step(tiny_config, tiny_model_dir):
    cfg = tiny_config(max_steps=3, **PROBES)
    sink = ev.ListSink()
    assert TrainingRun(prepare_run(cfg), sink=sink).execute() == "finished"
    kinds = [e.type if not isinstance(e, ev.Phase) else e.name for e in sink.events]
    # every slow part is announced before it runs, and the run_started comes once the model is loaded
    # (the start check before the run tokenized the data: the trainer says it takes the cached rows)
    assert kinds[:6] == ["loading_tokenizer", "preparing_data", "preparing_data", "loading_model", "run_started",
                         "warning"], kinds
    assert kinds[6] == "first_step" and kinds[7] == "step", kinds
    loading = [e for e in sink.events if isinstance(e, ev.Phase) and e.name == "loading_model"][0]
    assert loading.message.startswith("Loading the model model (fp32, CPU) and attaching LoRA adapters (r=8)")
    data, cached = [e for e in sink.events if isinstance(e, ev.Phase) and e.name == "preparing_data"]
    assert data.message == "Reading and tokenizing the data: train.jsonl"  # the file's name, not its whole path
    assert (cached.message, cached.progress) == ("Tokenized data from the cache", 1.0)
    # the base answers follow the first step event (not before it), one phase event per prompt
    first_step = kinds.index("step")
    baselines = [e for e in sink.of_type(ev.Sample) if e.baseline is not None]
    assert len(baselines) == 2 and all(sink.events.index(b) > first_step for b in baselines)
    assert kinds[first_step + 1: first_step + 5] == ["baseline_samples", "sample", "baseline_samples", "sample"]
    progress = [e.progress for e in sink.of_type(ev.Phase) if e.name == "baseline_samples"]
    assert progress == [0.0, 0.5]
    assert all(b.step == 0 and b.output == b.baseline for b in baselines)
    # the answers with the adapters switched off are the untrained model's, word for word
    prompts = [b.prompt for b in baselines]
    assert [b.baseline for b in baselines] == base_answers(tiny_model_dir, prompts, 8)
    assert [(e.name, e.step) for e in sink.of_type(ev.Phase)] == [
        ("loading_tokenizer", 0), ("preparing_data", 0), ("preparing_data", 0), ("loading_model", 0), ("first_step", 0),
        ("baseline_samples", 1), ("baseline_samples", 1),  # during step 1, after its event
        ("evaluating", 3), ("sampling", 3), ("saving_model", 3)]  # the end is announced too
    assert [e.step for e in sink.of_type(ev.Step)] == [1, 2, 3]


def test_the_time_of_the_base_answers_is_not_training_time(tmp_path):
    import time

    from cockpit.training.callbacks import EventCallback, TokenCounter

    cb = EventCallback(ev.ListSink(), tmp_path, TokenCounter(), StopFlag(), None, 0, 0, start_step=0)
    t0, calls = cb.session_t0, []
    cb.baseline = lambda: (calls.append(1), time.sleep(0.2))
    cb.give_baseline()
    cb.give_baseline()  # once only
    assert calls == [1] and cb.baseline is None
    assert cb.session_t0 - t0 >= 0.2  # elapsed time, speed and ETA count without it


def test_full_finetuning_answers_as_the_base_before_training(tiny_config):
    """Nothing can be switched off in full fine-tuning: the base answers come before step 1."""
    sink = ev.ListSink()
    assert TrainingRun(prepare_run(tiny_config(method="full", max_steps=2, **PROBES)), sink=sink).execute() \
        == "finished"
    kinds = [e.type if not isinstance(e, ev.Phase) else e.name for e in sink.events]
    first_step = kinds.index("step")
    assert kinds.index("baseline_samples") < kinds.index("first_step") < first_step
    assert sum(e.baseline is not None for e in sink.of_type(ev.Sample)) == 2
    assert all(sink.events.index(e) < first_step for e in sink.of_type(ev.Sample) if e.baseline is not None)


def test_base_answers_with_trained_adapters_switched_off_are_the_untrained_models(tiny_config, tiny_model_dir):
    """Adapters that change the answers (as after some training) are switched off for the
    baseline: the answers are the untrained model's, and with the adapters on they differ."""
    import torch

    from cockpit.models.generate import generate

    run = TrainingRun(prepare_run(tiny_config(**PROBES)), sink=ev.ListSink())
    run.setup()
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in run.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)  # what many steps of a high learning rate would leave
    expected = base_answers(tiny_model_dir, run.probes, 8)
    assert generate(run.model, run.tokenizer, run.probes, 8) != expected, "the adapters changed nothing"
    run._baseline(run.probes)
    assert [e.baseline for e in run.sink.of_type(ev.Sample)] == expected
    assert generate(run.model, run.tokenizer, run.probes, 8) != expected, "the adapters stay switched off"


def test_a_run_stopped_before_its_base_answers_gets_them_once_on_resume(tiny_config):
    """A stop asked for before the first step ends the run without the base answers (no one
    waits for them); the resume reads the log, gives them once, and a second resume none."""
    cfg = tiny_config(max_steps=4, save_steps=100, **PROBES)
    run_dir = prepare_run(cfg)
    stop = StopFlag()
    stop.requested = True
    first = Recorded(run_dir)
    assert TrainingRun(run_dir, sink=first, stop=stop).execute() == "stopped"
    assert first.of_type(ev.Step) and not [e for e in first.of_type(ev.Sample) if e.baseline is not None]

    class StopAfterTheBaseline(Recorded):
        def emit(self, event):
            super().emit(event)
            if isinstance(event, ev.Sample) and event.baseline is not None:
                stop.requested = True

    stop = StopFlag()
    second = StopAfterTheBaseline(run_dir)
    assert TrainingRun(run_dir, resume=True, sink=second, stop=stop).execute() == "stopped"
    baselines = [e for e in second.of_type(ev.Sample) if e.baseline is not None]
    assert len(baselines) == 2 and second.of_type(ev.Step)[0].step == 2
    assert second.events.index(baselines[0]) > second.events.index(second.of_type(ev.Step)[0])
    phase = [e for e in second.of_type(ev.Phase) if e.name == "first_step"][0]
    assert phase.message == "Restoring checkpoint-1 and running step 2"

    third = Recorded(run_dir)
    assert TrainingRun(run_dir, resume=True, sink=third).execute() == "finished"
    assert third.of_type(ev.Step) and not [e for e in third.of_type(ev.Sample) if e.baseline is not None]


def test_materializing_is_announced_only_when_there_is_something_to_convert(tmp_path):
    from cockpit.errors import CockpitError
    from cockpit.models.sources import materialize_gguf

    heard = []
    done = tmp_path / "done"
    done.mkdir()
    (done / ".cockpit-complete").write_text("ok\n")
    assert materialize_gguf(tmp_path / "x.gguf", done, lambda *a: heard.append(a)) == done
    assert heard == []  # already materialized: nothing to say
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf")
    with pytest.raises(CockpitError):
        materialize_gguf(broken, tmp_path / "out", lambda *a: heard.append(a))
    assert [name for name, _ in heard] == ["materializing"] and "broken.gguf" in heard[0][1]


def test_a_run_in_the_callers_process_leaves_its_environment_and_warning_filters(tiny_config, monkeypatch):
    """train --foreground and demo train in the caller's process: the trackers' variables
    (TENSORBOARD_LOGGING_DIR) and the trainer's warning filters must not outlive the run."""
    import os
    import warnings

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    env, filters = dict(os.environ), list(warnings.filters)
    run_dir = prepare_run(tiny_config(max_steps=1, report_to="tensorboard"))
    assert TrainingRun(run_dir, sink=ev.ListSink()).execute() == "finished"
    assert any((run_dir / "logs").rglob("events.out.tfevents.*"))  # the variable did reach the tracker
    assert dict(os.environ) == env
    assert warnings.filters == filters
