"""Comparing runs: their loss curves, the settings that differ and their final numbers.

:func:`compare_runs` reads each run directory the way a viewer does (its event log folded
by :class:`cockpit.run.follow.RunState`, through :class:`cockpit.run.follow.RunFollower`), its
``config_used.yaml`` and, when ``llm-cockpit eval`` wrote one, its ``eval.json``, and
returns a :class:`Comparison`:

* ``curves``: train loss and eval loss of every run, each point with its step and the
  tokens seen by then (so a chart can put either on its x axis);
* ``settings``: the config keys whose values are not the same in every run;
* ``metrics``: one row per number (final and best train loss, best eval loss, tokens/s,
  peak memory, steps, tokens, wall time, then every numeric ``eval.json`` metric), with
  the best run(s) of each row marked. Which way is better is decided by :func:`better`,
  the only place that knows.

Runs are named by letters (A, B, ...) in the result, so tables and chart legends stay
narrow whatever the run directories are called. Nothing here prints or draws.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from cockpit.run import events as ev
from cockpit.errors import CockpitError
from cockpit.run.follow import RunFollower, RunState
from cockpit.run.rundir import EVENTS_FILE
from cockpit.evaluation.run_numbers import eval_metrics, peak_memory, run_settings, tokens_seen, wall_time
from cockpit.run.words import fmt_bytes, fmt_duration, fmt_num, num

CURVE_NAMES = ("loss", "eval_loss")
LOWER, HIGHER = "lower", "higher"
IGNORED_SETTINGS = ("output_dir", "run_name")  # where a run lives and what it is called differ by nature

# -- which way is better: here and nowhere else -------------------------------------
_NO_DIRECTION_WORDS = ("delta", "change", "diff", "drop", "gain", "examples", "count", "steps", "tokens")
_HIGHER_PREFIXES = ("acc", "exact", "match", "jaccard", "rouge", "bleu", "recall", "precision", "f1", "score",
                    "win", "reward", "margin", "throughput")
_LOWER_PREFIXES = ("loss", "perplexity", "ppl", "mem", "peak", "bytes", "time", "seconds", "duration", "wall",
                   "latency", "error", "forget")


def better(key: str) -> str | None:
    """Which way is better for the metric ``key``: :data:`LOWER` (losses, perplexity, memory,
    time), :data:`HIGHER` (tokens/s and accuracy-type scores) or None (a count, a change of
    unknown sign, a name this does not know: nothing is marked best).

    Decided on the words of the key's last part (``regression.fact_recall`` -> fact, recall):
    a rate per second is higher-better, any other ``*_s`` a time (lower-better)."""
    last = key.rsplit(".", 1)[-1].lower()
    if last.endswith("per_s"):
        return HIGHER
    words = [w for w in re.split(r"[^a-z0-9]+", last) if w]
    if any(w.startswith(p) for w in words for p in _NO_DIRECTION_WORDS):
        return None
    if any(w.startswith(p) for w in words for p in _HIGHER_PREFIXES):
        return HIGHER
    if any(w.endswith("loss") or w.startswith(p) for w in words for p in _LOWER_PREFIXES) or last.endswith("_s"):
        return LOWER
    return None


# -- the result ------------------------------------------------------------------------
@dataclass
class Curve:
    """One metric of one run over training: ``values[i]`` at ``steps[i]``, after
    ``tokens[i]`` tokens (None where the run recorded nothing to count them from)."""

    steps: list[float] = field(default_factory=list)
    tokens: list[float | None] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def points(self, x: str = "step") -> tuple[list[float], list[float]]:
        """``(xs, ys)`` for a chart, ``x`` is ``"step"`` or ``"tokens"`` (points without a
        token count are left out of the latter)."""
        if x == "tokens":
            pairs = [(t, v) for t, v in zip(self.tokens, self.values) if t is not None]
            return [p[0] for p in pairs], [p[1] for p in pairs]
        return list(self.steps), list(self.values)

    def to_json(self) -> dict[str, list]:
        return {"steps": self.steps, "tokens": self.tokens, "values": self.values}


@dataclass
class RunSide:
    """One compared run: its letter in tables and legends, where it is, what it is."""

    letter: str
    name: str
    path: Path
    state: str
    model: str
    method: str
    step: int
    total_steps: int
    tokens_source: str  # "recorded" (step events carry tokens), "derived" (from tokens/s x time) or "none"
    curves: dict[str, Curve]

    def to_json(self) -> dict[str, Any]:
        return {"letter": self.letter, "name": self.name, "path": str(self.path), "state": self.state,
                "model": self.model, "method": self.method, "step": self.step, "total_steps": self.total_steps,
                "tokens_source": self.tokens_source,
                "curves": {name: curve.to_json() for name, curve in self.curves.items()}}


@dataclass
class SettingRow:
    """A config key whose value is not the same in every run (``cells``: as shown)."""

    key: str
    values: list[Any]
    cells: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "values": self.values}


@dataclass
class MetricRow:
    """One number for every run; ``best`` holds the indexes of the best run(s), empty when
    the row has no direction, fewer than two runs have it, or all are equal."""

    key: str
    label: str
    values: list[float | None]
    cells: list[str]
    better: str | None
    best: list[int]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "better": self.better, "best": self.best,
                "values": [_json_number(v) for v in self.values]}


@dataclass
class Comparison:
    """What :func:`compare_runs` found; ``notes`` are sentences about how numbers were got."""

    runs: list[RunSide]
    settings: list[SettingRow]
    metrics: list[MetricRow]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``compare --json`` prints it)."""
        return {"version": 1, "runs": [r.to_json() for r in self.runs],
                "settings": [s.to_json() for s in self.settings],
                "metrics": [m.to_json() for m in self.metrics], "notes": self.notes}


# -- building it -----------------------------------------------------------------------
def compare_runs(run_dirs: Sequence[str | Path]) -> Comparison:
    """Compare two or more run directories (already resolved, e.g. by
    :func:`cockpit.run.registry.find_run`)."""
    paths = [Path(p) for p in run_dirs]
    if len(paths) < 2:
        raise CockpitError("compare needs at least two runs",
                           "name two or more: llm-cockpit compare RUN RUN (list them with: llm-cockpit runs)")
    seen: set[Path] = set()
    for path in paths:
        if path.resolve() in seen:
            raise CockpitError(f"run {path.name} is given twice", "compare different runs")
        seen.add(path.resolve())
    readings = [_read_run(letter_for(i), path) for i, path in enumerate(paths)]
    notes = [f"{r.side.letter}: tokens seen are derived from its logged tokens/s and step times (its step "
             f"events carry no token count)" for r in readings if r.side.tokens_source == "derived"]
    notes += [f"{r.side.letter}: {r.settings_note}" for r in readings if r.settings_note]
    return Comparison(runs=[r.side for r in readings], settings=_differing_settings(readings),
                      metrics=_metric_rows(readings), notes=notes)


def letter_for(index: int) -> str:
    """A, B, ... Z, then R27, R28, ..."""
    return string.ascii_uppercase[index] if index < 26 else f"R{index + 1}"


@dataclass
class _Reading:
    side: RunSide
    state: RunState
    settings: dict[str, Any]
    settings_note: str
    numbers: dict[str, float | None]
    devices: str
    eval_metrics: dict[str, float]


def _read_run(letter: str, path: Path) -> _Reading:
    follower = RunFollower(path)
    events = follower.poll()
    if not events:
        raise CockpitError(f"run {path.name} has no events yet ({path / EVENTS_FILE} is missing or empty)",
                           "wait for its first step, or compare other runs (list them with: llm-cockpit runs)")
    state = follower.state
    steps = [e for e in events if isinstance(e, ev.Step)]
    tokens_at, source = tokens_seen(steps)
    curves = {name: _curve(state.series[name].steps, state.series[name].values, tokens_at) for name in CURVE_NAMES}
    side = RunSide(letter=letter, name=path.name, path=path, state=state.state, model=state.model,
                   method=state.method, step=state.step, total_steps=state.total_steps, tokens_source=source,
                   curves=curves)
    settings, note = run_settings(path, state)
    peak, devices = peak_memory(steps)
    final_loss = state.loss if state.loss is not None else num(state.summary.get("final_loss"))
    tokens = max(tokens_at.values()) if tokens_at else num(state.summary.get("tokens"))
    speeds = [v for v in (num(e.tokens_per_s) for e in steps) if v is not None and math.isfinite(v) and v > 0]
    numbers = {
        "final_loss": final_loss,
        "best_loss": state.best_loss,
        "best_eval_loss": state.best_eval_loss,
        # the median: the first step's warm-up and the pauses for eval and samples do not count
        "tokens_per_s": median(speeds) if speeds else None,
        "peak_mem": peak,
        "steps": float(state.step) if steps else None,
        "tokens": tokens,
        "wall_s": wall_time(events),
    }
    return _Reading(side, state, settings, note, numbers, devices, eval_metrics(path))


def _curve(steps: list[float], values: list[float], tokens_at: dict[int, float]) -> Curve:
    """The series with each point's tokens: those of the last logged step at or before it
    (an eval runs after its step; a long run's series are averaged to fewer points)."""
    known = sorted(tokens_at)
    tokens: list[float | None] = []
    for s in steps:
        i = bisect.bisect_right(known, s) - 1
        tokens.append(tokens_at[known[i]] if i >= 0 else None)
    return Curve(steps=list(steps), tokens=tokens, values=list(values))


_MISSING = object()


def _differing_settings(readings: list[_Reading]) -> list[SettingRow]:
    keys: list[str] = []
    for r in readings:
        keys += [str(k) for k in r.settings if str(k) not in keys and str(k) not in IGNORED_SETTINGS]
    rows = []
    for key in keys:
        values = [r.settings.get(key, _MISSING) for r in readings]
        if len({json.dumps(v, sort_keys=True, default=str) if v is not _MISSING else "\0missing" for v in values}) > 1:
            rows.append(SettingRow(key, [None if v is _MISSING else v for v in values],
                                   ["(not set)" if v is _MISSING else show_setting(v) for v in values]))
    return rows


def show_setting(value: Any) -> str:
    """A config value as a table shows it: ``-`` for none, lists joined by commas."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(show_setting(v) for v in value) or "[]"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


# -- the metric rows ---------------------------------------------------------------------
# (key, label, how its cells are written); eval.json's metrics follow, in their own order
RUN_METRICS = (
    ("final_loss", "final train loss", "loss"),
    ("best_loss", "best train loss", "loss"),
    ("best_eval_loss", "best eval loss", "loss"),
    ("tokens_per_s", "tokens/s (median)", "rate"),
    ("peak_mem", "peak memory", "bytes"),
    ("steps", "steps", "count"),
    ("tokens", "tokens seen", "count"),
    ("wall_s", "wall time", "seconds"),
)


def _metric_rows(readings: list[_Reading]) -> list[MetricRow]:
    rows = []
    mixed_devices = len({r.devices for r in readings if r.devices}) > 1
    for key, label, kind in RUN_METRICS:
        values = [r.numbers.get(key) for r in readings]
        cells = [_cell(v, kind) for v in values]
        if key == "peak_mem" and mixed_devices:  # a GPU's peak beside a process's RAM: say which is which
            cells = [f"{c} {r.devices}" if v is not None else c for c, v, r in zip(cells, values, readings)]
        row = _row(key, label, values, cells)
        if key == "peak_mem" and mixed_devices:
            row.best = []  # GPU memory and RAM are not the same resource: no winner
        rows.append(row)
    eval_keys: list[str] = []
    for r in readings:
        eval_keys += [k for k in r.eval_metrics if k not in eval_keys]
    for key in eval_keys:
        values = [r.eval_metrics.get(key) for r in readings]
        rows.append(_row(key, key.replace(".", " ", 1), values, [_cell(v, "score") for v in values]))
    return rows


def _row(key: str, label: str, values: list[float | None], cells: list[str]) -> MetricRow:
    direction = better(key)
    return MetricRow(key=key, label=label, values=values, cells=cells, better=direction,
                     best=best_indexes(values, direction))


def best_indexes(values: Sequence[float | None], direction: str | None) -> list[int]:
    """Indexes of the best finite values (ties all count); none without a direction, with
    fewer than two values to compare, or when every value is the same."""
    finite = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if direction is None or len(finite) < 2 or len({v for _, v in finite}) == 1:
        return []
    target = min(v for _, v in finite) if direction == LOWER else max(v for _, v in finite)
    return [i for i, v in finite if v == target]


def _cell(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "bytes":
        return fmt_bytes(value)
    if kind == "seconds":
        return fmt_duration(value)
    if kind == "count" and math.isfinite(value):
        return f"{value:,.0f}"
    if kind == "rate" and math.isfinite(value) and value >= 100:
        return f"{value:,.0f}"
    return fmt_num(value, 4)


def _json_number(value: float | None) -> float | str | None:
    """JSON has no inf/NaN: written as strings, as the event log does."""
    return value if value is None or math.isfinite(value) else str(value)
