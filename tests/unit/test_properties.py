"""Property-based tests (hypothesis) of the engine's small contracts beyond the data loaders:
the event log (write, tail, read back), the dashboard's reducer, config resolution and its
YAML round trip, and the atomic status file.

Each example works in its own ``tempfile`` directory: pytest's function-scoped ``tmp_path``
is not reset between hypothesis examples.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, reject, settings
from hypothesis import strategies as st

from cockpit.run import events as ev
from cockpit.run import atomic
from cockpit.config import (
    METHODS,
    PRECISIONS,
    SCHEDULERS,
    TrainConfig,
    build_config,
    config_from_dict,
    config_to_yaml,
    load_config_file,
    parse_overrides,
    validate,
)
from cockpit.errors import CockpitError
from cockpit.run.follow import SERIES_NAMES, RunState, Series, num
from cockpit.run.status import ACTIVE_STATES, FINAL_STATES, STATUS_FILE, effective_status, read_status, write_status

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies ---------------------------------------------------------------------------
# Text as Python can hold it: any code point, plus lone surrogates (a non-UTF-8 file name
# decoded with surrogateescape, a "\ud800" escape in a JSON dataset) and the characters
# that trip line-oriented formats (NEL, LS/PS, CR, BOM, NUL, quotes, YAML indicators).
CHARS = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),
    st.sampled_from("\n\r\x85\u2028\u2029\ufeff\x00\t\"'\\#:-{}[]&*!|>%@`"),
)
texts = st.text(CHARS, max_size=20)
any_floats = st.floats()  # nan and +-inf included
opt_floats = st.none() | any_floats
json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | any_floats | texts
json_values = st.recursive(
    json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(texts, c, max_size=3), max_leaves=8
)
json_dicts = st.dictionaries(texts, json_values, max_size=4)
steps = st.integers(-5, 2**63)
times = st.floats()

EVENTS = st.one_of(
    st.builds(ev.RunStarted, step=steps, time=times, config=json_dicts, model=texts, method=texts,
              total_steps=st.integers(0, 2**40), hardware=json_dicts, estimate=st.none() | json_dicts,
              resumed_from=st.none() | texts),
    st.builds(ev.Step, step=steps, time=times, epoch=any_floats, loss=opt_floats, grad_norm=opt_floats,
              lr=opt_floats, tokens_per_s=opt_floats, tokens=st.none() | st.integers(0, 2**63),
              elapsed_s=any_floats, eta_s=opt_floats, mem=st.lists(json_dicts, max_size=2)),
    st.builds(ev.Gpu, step=steps, time=times, devices=st.lists(json_dicts, max_size=2)),
    st.builds(ev.Eval, step=steps, time=times, eval_loss=opt_floats, metrics=json_dicts),
    st.builds(ev.Sample, step=steps, time=times, prompt=texts, output=texts, baseline=st.none() | texts),
    st.builds(ev.Phase, step=steps, time=times, name=texts, message=texts, progress=opt_floats),
    st.builds(ev.Warning, step=steps, time=times, kind=texts, message=texts, advice=texts),
    st.builds(ev.Checkpoint, step=steps, time=times, path=texts),
    st.builds(ev.RunFinished, step=steps, time=times, state=texts, summary=json_dicts),
    st.builds(ev.Error, step=steps, time=times, message=texts, advice=texts),
)


def json_normal(value):
    """What any JSON round trip does to a value: adjacent lone surrogates that form a pair
    come back as the one astral character (JSON cannot tell ``\\ud83d\\ude00`` apart)."""
    return json.loads(json.dumps(value))


def same(a, b) -> bool:
    """Deep equality where NaN equals NaN and types must match (1 != 1.0 != True)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def write_events(path: Path, events: list[ev.Event]) -> None:
    sink = ev.JsonlSink(path)
    try:
        for event in events:
            sink.emit(event)
    finally:
        sink.close()


# -- events -------------------------------------------------------------------------------
@SOME
@given(events=st.lists(EVENTS, max_size=6))
@example(events=[ev.Sample(prompt="caf\udce9.jsonl", output="\ud800", baseline="\x85\u2028")])
@example(events=[ev.Step(step=3, loss=float("nan"), grad_norm=float("inf"), lr=float("-inf"), time=float("nan"))])
def test_events_round_trip_through_the_jsonl_sink(events):
    """Every event comes back with its type and fields; the only normalization is the
    documented one: non-finite floats are written as the strings ``"nan"``/``"inf"``/``"-inf"``
    (which :func:`cockpit.run.follow.num` reads back as floats)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "events.jsonl"
        write_events(path, events)
        raw = path.read_bytes()
        back = ev.read_events(path)
    assert raw.count(b"\n") == len(events)  # one line per event
    assert [type(e) for e in back] == [type(e) for e in events]
    for orig, got in zip(events, back):
        assert got.to_dict() == json_normal(orig.to_dict())
        assert same(float(got.time), orig.time)
        assert got.step == orig.step
        for f in dataclasses.fields(orig):
            value = getattr(orig, f.name)
            if isinstance(value, float):
                assert same(num(getattr(got, f.name)), value), f.name


@SOME
@given(data=st.data(), events=st.lists(EVENTS, min_size=1, max_size=5))
def test_tail_of_a_file_written_in_arbitrary_chunks_yields_exactly_the_complete_events(data, events):
    with tempfile.TemporaryDirectory() as d:
        full = Path(d) / "full.jsonl"
        write_events(full, events)
        blob = full.read_bytes()
        cuts = data.draw(st.lists(st.integers(0, len(blob)), max_size=8, unique=True).map(sorted), label="cuts")
        path = Path(d) / "events.jsonl"
        tail = ev.EventTail(path)
        assert tail.read_new() == []  # no file yet
        got: list[ev.Event] = []
        pos = 0
        with open(path, "wb", buffering=0) as fh:
            for cut in [*cuts, len(blob)]:
                fh.write(blob[pos:cut])  # may end mid-line, even mid UTF-8 sequence
                pos = cut
                got += tail.read_new()
                # exactly the lines completed so far, never a half line
                assert len(got) == blob[:pos].count(b"\n")
        assert tail.bad_lines == 0
        assert [e.to_dict() for e in got] == [e.to_dict() for e in ev.read_events(full)]


@FAST
@given(events=st.lists(EVENTS, min_size=1, max_size=4), keep=st.integers(0, 10**6))
def test_partial_last_line_is_held_back_until_completed(events, keep):
    with tempfile.TemporaryDirectory() as d:
        full = Path(d) / "full.jsonl"
        write_events(full, events)
        blob = full.read_bytes()
        last_start = blob.rstrip(b"\n").rfind(b"\n") + 1
        cut = last_start + keep % (len(blob) - last_start)  # inside the last line, before its newline
        path = Path(d) / "events.jsonl"
        path.write_bytes(blob[:cut])
        tail = ev.EventTail(path)
        assert len(tail.read_new()) == len(events) - 1
        assert [e.to_dict() for e in ev.read_events(path)] == tail_dicts_before(events)  # one-shot reader agrees
        with open(path, "ab") as fh:
            fh.write(blob[cut:])
        last = tail.read_new()
        assert [e.to_dict() for e in last] == [ev.read_events(full)[-1].to_dict()]
        assert tail.read_new() == [] and tail.bad_lines == 0


def tail_dicts_before(events: list[ev.Event]) -> list[dict]:
    """What reading back all events but the last gives (via a real file)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "e.jsonl"
        write_events(path, events[:-1])
        return [e.to_dict() for e in ev.read_events(path)]


# Corrupt lines: arbitrary bytes, cut-off JSON, and JSON objects of known event types whose
# fields have any JSON value (NaN/Infinity included, which Python's json reads).
garbage_dicts = st.fixed_dictionaries(
    {"type": st.sampled_from([*ev.EVENT_TYPES, "unknown", "", "x"]) | json_values},
    optional={"step": json_values, "time": json_values},
)
garbage_lines = st.one_of(
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),
    garbage_dicts.map(lambda d: json.dumps(d, allow_nan=True).encode("utf-8", "backslashreplace")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b'{"type": "step", "step": 1e400}', b'{"type": "eval", "time": -1e999, "step": 2}',
                     b'{"type": "step", "step": Infinity}', b'{"step": NaN}', b'{"type": "st', b"\xff\xfe{}",
                     b"[" * 50, b'{"type": "sample", "step": "12"}']),
)


@SOME
@given(lines=st.lists(st.one_of(EVENTS, garbage_lines), max_size=8))
@example(lines=[b'{"type": "step", "step": 1e400}'])
def test_corrupt_lines_never_crash_the_reader(lines):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "events.jsonl"
        with open(path, "wb") as fh:
            for line in lines:
                if isinstance(line, ev.Event):
                    line = json.dumps(line.to_dict(), ensure_ascii=False).encode("utf-8", "backslashreplace")
                fh.write(line + b"\n")
        tail = ev.EventTail(path)
        got = tail.read_new()
        good = [ev.parse_event(json.loads(json.dumps(x.to_dict()))).to_dict() for x in lines
                if isinstance(x, ev.Event)]
    assert all(isinstance(e, ev.Event) and isinstance(e.step, int) and isinstance(e.time, float) for e in got)
    nonblank = sum(1 for x in lines if not isinstance(x, bytes) or x.strip())
    assert len(got) + tail.bad_lines == nonblank
    # the real events all come through, in order (garbage that is a JSON object also does)
    it = iter(e.to_dict() for e in got if not isinstance(e, ev.UnknownEvent))
    assert all(any(g == x for x in it) for g in good)


# -- the dashboard's reducer ----------------------------------------------------------------
small_steps = st.integers(0, 30)  # small, so that replays, duplicates and jumps back are common
metric = st.none() | st.floats(-1e6, 1e6) | st.sampled_from([float("nan"), float("inf"), float("-inf")])
RUN_EVENTS = st.one_of(
    st.builds(ev.Step, step=small_steps, loss=metric, grad_norm=metric, lr=metric, tokens_per_s=metric,
              tokens=st.none() | st.integers(0, 10**9), epoch=st.floats(0, 10), elapsed_s=st.floats(0, 1e5),
              eta_s=metric, time=st.floats(1e9, 2e9)),
    st.builds(ev.Step, step=small_steps, loss=metric, time=st.floats(1e9, 2e9)),
    st.builds(ev.Eval, step=small_steps, eval_loss=metric),
    st.builds(ev.RunStarted, step=small_steps, total_steps=st.integers(0, 40),
              resumed_from=st.none() | st.just("checkpoints/checkpoint-4"), model=st.sampled_from(["", "m"]),
              config=st.fixed_dictionaries({}, optional={"model": st.text(max_size=3)})),
    st.builds(ev.RunFinished, step=small_steps, state=st.sampled_from([*FINAL_STATES, "weird"]),
              summary=st.dictionaries(st.sampled_from(["final_loss", "tokens"]), metric)),
    st.builds(ev.Error, step=small_steps, message=st.text(max_size=5)),
    st.builds(ev.Sample, step=small_steps, prompt=st.sampled_from(["a", "b"]), output=st.text(max_size=3),
              baseline=st.none() | st.just("base")),
    st.builds(ev.Phase, step=small_steps, name=st.sampled_from(["loading_model", "baseline_samples", ""]),
              progress=st.none() | metric),
    st.builds(ev.Warning, step=small_steps, kind=st.sampled_from(["nan", "grad_spike", ""])),
    st.builds(ev.Checkpoint, step=small_steps, path=st.just("checkpoints/c")),
    st.builds(ev.Gpu, devices=st.lists(st.fixed_dictionaries({"util": st.integers(0, 100)}), max_size=2)),
    st.builds(ev.UnknownEvent, raw=st.just({"type": "future"})),
)


def series_values(event: ev.Event) -> dict[str, float | None]:
    if isinstance(event, ev.Step):
        return {"loss": num(event.loss), "grad_norm": num(event.grad_norm), "lr": num(event.lr),
                "tokens_per_s": num(event.tokens_per_s)}
    if isinstance(event, ev.Eval):
        return {"eval_loss": num(event.eval_loss)}
    return {}


@SOME
@given(events=st.lists(RUN_EVENTS, max_size=40))
@example(events=[ev.Step(step=1, loss=2.0), ev.Step(step=1, loss=1.0)])
@example(events=[ev.Eval(step=5, eval_loss=2.0), ev.RunFinished(step=5),
                 ev.RunStarted(step=5, resumed_from="checkpoints/checkpoint-5"), ev.Eval(step=5, eval_loss=1.0)])
def test_folding_any_event_sequence_keeps_one_sorted_point_per_step(events):
    """Whatever the order (resumes going back, replayed and duplicated steps, a run_started
    after run_finished), the fold never raises and each chart series holds one point per
    step, sorted, the newest value of the current timeline: a step logged again (or an
    earlier one, after a resume) replaces the points from there on."""
    state = RunState()
    model: dict[str, dict[int, float]] = {name: {} for name in SERIES_NAMES}
    finite_losses: list[float] = []
    final = None
    for e in events:
        state.apply(e)
        for name, value in series_values(e).items():
            if value is not None and math.isfinite(value):
                kept = {s: v for s, v in model[name].items() if s < e.step}
                model[name] = {**kept, e.step: value}
        if isinstance(e, ev.Step) and num(e.loss) is not None and math.isfinite(num(e.loss)):
            finite_losses.append(num(e.loss))
        if isinstance(e, (ev.RunFinished, ev.Error)):
            final = True
        elif isinstance(e, ev.RunStarted):
            final = False
        for name, series in state.series.items():
            assert series.steps == sorted(set(series.steps)), name
            assert len(series.steps) == len(series.values)
            assert all(math.isfinite(v) for v in series.values)
            assert dict(zip(series.steps, series.values)) == model[name], name
        assert 0.0 <= state.progress <= 1.0
        if isinstance(e, (ev.Step, ev.RunFinished, ev.Error)):
            assert state.current_phase is None  # the training loop or the end: no startup phase shown
        phase = state.current_phase
        assert phase is None or phase.progress is None or 0.0 <= phase.progress <= 1.0
        if final is not None:
            assert state.is_final == final
    assert state.events_seen == len(events)
    assert state.best_loss == (min(finite_losses) if finite_losses else None)
    assert state.resumes == max(0, sum(isinstance(e, ev.RunStarted) for e in events) - 1)


@FAST
@given(first=st.integers(1, 40), back=st.integers(0, 40), second=st.integers(0, 40))
@example(first=5, back=1, second=1)  # crashed after logging step 5, resumed from checkpoint-4
def test_resume_from_a_checkpoint_replaces_the_replayed_steps(first, back, second):
    """Run steps 1..first, stop, resume from checkpoint ``ckpt`` and log ckpt+1..ckpt+second:
    the loss curve is the first run up to the checkpoint, then the resumed run."""
    ckpt = max(0, first - back)
    state = RunState()
    state.apply(ev.RunStarted(total_steps=100))
    state.apply_all([ev.Step(step=s, loss=1000.0 + s) for s in range(1, first + 1)])
    state.apply_all([ev.Checkpoint(step=ckpt, path=f"checkpoints/checkpoint-{ckpt}"),
                     ev.RunFinished(step=first, state="stopped")])
    state.apply(ev.RunStarted(step=ckpt, total_steps=100, resumed_from=f"checkpoints/checkpoint-{ckpt}"))
    assert not state.is_final and state.step == ckpt
    state.apply_all([ev.Step(step=s, loss=float(s)) for s in range(ckpt + 1, ckpt + second + 1)])
    loss = state.series["loss"]
    if second:
        assert loss.steps == list(range(1, ckpt + second + 1))
        assert loss.values == [1000.0 + s for s in range(1, ckpt + 1)] + [float(s) for s in
                                                                           range(ckpt + 1, ckpt + second + 1)]
    else:  # nothing logged yet after the resume: the old curve is still shown
        assert loss.steps == list(range(1, first + 1))


@FAST
@given(points=st.lists(st.tuples(st.integers(0, 200), st.floats(-10, 10)), max_size=300))
def test_bounded_series_stays_sorted_unique_and_bounded(points):
    series = Series(limit=16)
    for step, value in points:
        series.add(step, value)
        assert series.steps == sorted(set(series.steps))
        assert len(series) <= 16 and len(series.steps) == len(series.values)
    assert series.count == len(points)


# -- config -------------------------------------------------------------------------------
FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
HINTS = typing.get_type_hints(TrainConfig)
yamlish = st.one_of(
    texts,
    st.sampled_from(["true", "no", "null", "~", "", " ", "[a, b]", "{a: 1}", "[", "a: b: c", ".nan", "-.inf",
                     "1e400", "1.0e+400", "0x1F", "0o17", "1_000", "2e-4", "!!python/object:os.system",
                     "&a [*a]", "*x", "!!binary aGVsbG8=", "!!set {a}", "2020-01-01", "2020-13-45",
                     "2020-02-30 25:61:00", "12:30:00", "- a", "'quoted'", '"\\ud800"', "q_proj,,v_proj"]),
    st.from_regex(r"-?\d{1,4}(\.\d{0,3})?([eE][-+]?\d{1,3})?", fullmatch=True),
    st.from_regex(r"\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}:\d{2}(\.\d+)?Z?)?", fullmatch=True),
    st.integers(-(10**400), 10**400).map(str),
    st.integers(10**300, 10**330).map(str),
    st.floats().map(repr),
)
CHOICES = {"method": METHODS, "lr_scheduler": SCHEDULERS, "precision": PRECISIONS}


def plausible(name: str) -> st.SearchStrategy[str]:
    """A value as a user would type it for this key (mostly valid, sometimes out of range)."""
    hint = HINTS[name]
    if name in CHOICES:
        return st.sampled_from(CHOICES[name])
    if hint is int:
        return st.integers(0, 10**6).map(str)
    if hint is float:
        return st.floats(0, 1, exclude_min=True, exclude_max=True).map(repr)
    if hint is bool:
        return st.sampled_from(["true", "false", "yes", "no", "on", "off", "1", "0"])
    if name == "run_name":
        return st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True)
    return st.text(st.characters(exclude_characters="\n\r"), min_size=1, max_size=10)


plausible_pairs = st.sampled_from(FIELDS).flatmap(lambda k: plausible(k).map(lambda v: f"{k}={v}"))
pairs = st.one_of(
    plausible_pairs,
    plausible_pairs,
    st.tuples(st.sampled_from(FIELDS), yamlish).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.tuples(texts, yamlish).map(lambda kv: f"{kv[0]}={kv[1]}"),
    texts,
)


def check_types(cfg: TrainConfig) -> None:
    validate(cfg)
    for name in FIELDS:
        value, hint = getattr(cfg, name), HINTS[name]
        if hint in (int, float, bool, str):
            assert type(value) is hint, (name, value)
        elif typing.get_origin(hint) is list:
            assert isinstance(value, list) and all(type(v) is str for v in value), (name, value)
        elif typing.get_origin(hint) is dict:  # the column mapping
            assert isinstance(value, dict) and all(type(k) is str and type(v) is str for k, v in value.items())
        else:  # str | None
            assert value is None or type(value) is str, (name, value)


@SOME
@given(overrides=st.lists(pairs, max_size=4))
@example(overrides=["lr=2020-13-45"])
@example(overrides=["epochs=1" + "0" * 400])
def test_overrides_give_a_valid_config_or_a_cockpit_error(overrides):
    try:
        cfg = build_config(overrides=parse_overrides(overrides))
    except CockpitError as exc:
        event("CockpitError")
        assert exc.one_line().strip()
        return
    event("valid config")
    check_types(cfg)


yaml_lines = st.one_of(st.tuples(st.sampled_from(FIELDS), yamlish).map(lambda kv: f"{kv[0]}: {kv[1]}"), texts)


@FAST
@given(lines=st.lists(yaml_lines, max_size=4))
@example(lines=["lr: 2020-13-45"])
def test_any_config_file_gives_a_valid_config_or_a_cockpit_error(lines):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "my.yaml"
        path.write_text("\n".join(lines), encoding="utf-8", errors="backslashreplace")
        try:
            cfg = build_config(config_file=path)
        except CockpitError:
            event("CockpitError")
            return
    event("valid config")
    check_types(cfg)


names = st.text(CHARS, min_size=1, max_size=20).filter(lambda s: s.strip().lower() not in ("", "none", "null"))
unit = st.floats(0, 1, exclude_max=True)
CONFIG_VALUES = st.fixed_dictionaries({}, optional={
    "model": names, "data": names, "output_dir": names,
    "eval_data": st.none() | texts, "system_prompt": st.none() | texts,
    "run_name": st.none() | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True),
    "method": st.sampled_from(METHODS), "lr_scheduler": st.sampled_from(SCHEDULERS),
    "precision": st.sampled_from(PRECISIONS),
    "eval_split": unit, "warmup_ratio": unit, "lora_dropout": unit, "weight_decay": st.floats(0, 1),
    "lr": st.floats(0, 1, exclude_min=True, exclude_max=True),
    "epochs": st.floats(0, 1e6, exclude_min=True), "max_grad_norm": st.floats(min_value=0),
    "batch_size": st.integers(1, 2**40), "lora_r": st.integers(1, 512), "lora_alpha": st.integers(1, 2**40),
    "max_steps": st.integers(0, 2**64), "seed": st.integers(0, 2**64), "save_steps": st.integers(1, 10**6),
    "packing": st.booleans(), "grad_ckpt": st.booleans(),
    "lora_target_modules": st.lists(texts, min_size=1, max_size=3),
    "sample_prompts": st.lists(texts, max_size=3),
})


@SOME
@given(values=CONFIG_VALUES, header=st.sampled_from([None, "# written by llm-cockpit\n"]))
@example(values={"system_prompt": "line one\x85line two"}, header=None)
@example(values={"data": "caf\udce9.jsonl"}, header=None)
def test_config_survives_its_yaml_round_trip(values, header):
    try:
        cfg = config_from_dict(values)
    except CockpitError:
        reject()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "config_used.yaml"
        path.write_text(config_to_yaml(cfg, header), encoding="utf-8")  # as launch.py writes it
        back = load_config_file(path)
    assert back == cfg


# -- status files -------------------------------------------------------------------------
field_names = st.text(CHARS, min_size=1, max_size=10).filter(lambda k: k not in ("run_dir", "updated", "session"))


@SOME
@given(updates=st.lists(st.dictionaries(field_names, json_values, max_size=4), min_size=1, max_size=3))
@example(updates=[{"error": "cannot read caf\udce9.jsonl", "loss": float("nan"), "best": float("inf")}])
def test_status_round_trips_and_merges(updates):
    with tempfile.TemporaryDirectory() as d:
        expected: dict = {}
        for fields in updates:
            returned = write_status(d, **fields)
            expected.update(json_normal(fields))
            got = read_status(d)
            assert isinstance(got.pop("updated"), float)
            assert got.pop("session") == 0  # no launcher wrote launch.json: the trainer's session 0
            assert same(got, expected)
            assert same(json_normal({k: v for k, v in returned.items() if k not in ("updated", "session")}), expected)
        assert sorted(os.listdir(d)) == [STATUS_FILE]  # no temporary file left behind


class _Interrupted(Exception):
    pass


@FAST
@given(old=st.dictionaries(field_names, json_values, max_size=3),
       new=st.dictionaries(field_names, json_values, min_size=1, max_size=3),
       budget=st.integers(0, 400), how=st.sampled_from(["write", "fsync", "replace"]))
def test_an_interrupted_status_write_never_becomes_visible(old, new, budget, how):
    """A write that dies part way (disk full, a signal, a crash before the rename) leaves the
    previous status in place, whole, and no temporary file behind."""
    with tempfile.TemporaryDirectory() as d:
        before = write_status(d, **old)
        before_text = (Path(d) / STATUS_FILE).read_text(encoding="utf-8")
        real_fdopen, real_fsync, real_replace = os.fdopen, os.fsync, os.replace

        def fdopen(fd, *args, **kwargs):
            fh = real_fdopen(fd, *args, **kwargs)
            if how == "write":
                real_write = fh.write

                def write(text):
                    real_write(text[:budget])
                    fh.flush()
                    raise _Interrupted("disk full")
                fh.write = write
            return fh

        def fsync(fd):
            raise _Interrupted("killed")

        def replace(src, dst):
            raise _Interrupted("killed")

        patched = {"write": ("fdopen", fdopen), "fsync": ("fsync", fsync), "replace": ("replace", replace)}[how]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(atomic.os, patched[0], patched[1])
            with pytest.raises(_Interrupted):
                write_status(d, **new)
        assert (Path(d) / STATUS_FILE).read_text(encoding="utf-8") == before_text
        assert same(read_status(d), json_normal(before))
        assert sorted(os.listdir(d)) == [STATUS_FILE]
    assert (real_fdopen, real_fsync, real_replace) == (os.fdopen, os.fsync, os.replace)


@FAST
@given(prefix=st.integers(0, 10**6), fields=st.dictionaries(field_names, json_values, min_size=1, max_size=3))
def test_a_leftover_partial_temp_file_is_ignored(prefix, fields):
    """A writer killed outright (no cleanup) leaves ``.status.json.XXXX.tmp`` beside the
    status: readers still see the last complete status."""
    with tempfile.TemporaryDirectory() as d:
        before = write_status(d, state="running", step=3)
        text = json.dumps({**before, **fields}, indent=2, ensure_ascii=False, default=str)
        partial = text[: prefix % (len(text) + 1)]
        (Path(d) / f".{STATUS_FILE}.abc123.tmp").write_text(partial, encoding="utf-8", errors="backslashreplace")
        assert same(read_status(d), json_normal(before))


PID_MAX = 2**22  # Linux's upper bound on pids


def _dead_pid(pid) -> bool:
    """Values that can name no live process."""
    if pid is None or isinstance(pid, (bool, list, dict)):
        return pid is not True  # True is int 1 to int(): init, alive
    if isinstance(pid, float) and not math.isfinite(pid):
        return True
    try:
        n = int(pid)
    except (TypeError, ValueError, OverflowError):
        return True
    return n <= 0 or n > PID_MAX


@FAST
@given(status=st.dictionaries(st.sampled_from(["state", "pid", "error", "step"]) | texts, json_values, max_size=4),
       state=st.sampled_from([*ACTIVE_STATES, *FINAL_STATES, "unknown"]) | json_values,
       pid=json_values | st.integers(-(2**70), 2**70) | st.just(os.getpid()))
@example(status={}, state="running", pid=2**64)
@example(status={}, state="running", pid=float("inf"))
def test_effective_status_never_raises_and_only_fails_dead_active_runs(status, state, pid):
    """``status.json`` is read by viewers that must survive anything in it (an old, a newer
    or a hand-edited file): an active run whose pid can be no live process is ``failed``,
    one whose trainer is alive, and every ended run, is reported as written."""
    with tempfile.TemporaryDirectory() as d:
        content = {**status, "state": state, "pid": pid}
        (Path(d) / STATUS_FILE).write_text(json.dumps(content, allow_nan=True), encoding="utf-8")
        eff = effective_status(d)
    if state in ACTIVE_STATES and _dead_pid(pid):
        assert eff["state"] == "failed" and eff["error"] and "resume" in eff["advice"]
    elif state not in ACTIVE_STATES or pid == os.getpid():
        assert same(eff, json_normal(content))
    else:  # some other pid: alive or not, the answer is one of the two
        assert eff["state"] in (state, "failed")
