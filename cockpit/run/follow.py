"""Following a run: fold its event log into the state a viewer shows.

The dashboard and ``llm-cockpit attach --plain`` both watch a run the same way: a
:class:`RunFollower` reads the new lines of ``events.jsonl`` (and ``status.json``) on
each :meth:`RunFollower.poll`, and a :class:`RunState` reduces the events into what a
viewer needs: chart series, the latest throughput, memory and GPU readings, the newest
answer per probe prompt beside the base model's, warnings, progress, what the trainer
is busy with before its first step (the current ``phase``) and the end.

Nothing here draws anything or imports textual; :mod:`cockpit.run.words` (re-exported here)
puts the numbers into the words both viewers show.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.run import events as ev
from cockpit.run.rundir import EVENTS_FILE
from cockpit.run.status import FINAL_STATES, effective_status
# the words both viewers show live in cockpit.run.words; imported from here by the viewers too
from cockpit.run.words import (fmt_age, fmt_bytes, fmt_duration, fmt_num, num, phase_clock,  # noqa: F401
                           phase_line, summary_line)

SERIES_NAMES = ("loss", "eval_loss", "grad_norm", "lr", "tokens_per_s")
MAX_WARNINGS = 200


class Series:
    """Points ``(step, value)`` of one metric, bounded in memory.

    A week-long run logs hundreds of thousands of steps, but a chart is at most a few
    hundred cells wide: past ``limit`` points, neighbours are averaged pairwise so the
    series keeps its shape at half the resolution. Non-finite values are not stored
    (they are reported as warnings, and would break a chart's scale).
    """

    def __init__(self, limit: int = 2048) -> None:
        self.limit = max(16, limit)
        self.steps: list[float] = []
        self.values: list[float] = []
        self.count = 0  # every finite value ever added, before averaging

    def add(self, step: float, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            return
        if self.steps and step <= self.steps[-1]:
            # a resumed run repeats steps after its checkpoint (the last one logged included):
            # the new values replace the old
            while self.steps and self.steps[-1] >= step:
                self.steps.pop()
                self.values.pop()
        self.steps.append(float(step))
        self.values.append(float(value))
        self.count += 1
        if len(self.steps) > self.limit:
            self._halve()

    def _halve(self) -> None:
        steps, values = self.steps, self.values
        n = len(steps) - (len(steps) % 2)
        self.steps = [steps[i + 1] for i in range(0, n, 2)] + steps[n:]
        self.values = [(values[i] + values[i + 1]) / 2 for i in range(0, n, 2)] + values[n:]

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None

    def __len__(self) -> int:
        return len(self.steps)

    def copy(self) -> Series:
        other = Series(self.limit)
        other.steps, other.values, other.count = list(self.steps), list(self.values), self.count
        return other


@dataclass
class SampleView:
    """The base model's answer and the newest answer to one probe prompt."""

    prompt: str
    baseline: str | None = None
    output: str = ""
    step: int = 0


@dataclass
class PhaseView:
    """What the trainer is busy with outside the training loop (loading, the base model's
    answers, ...): the newest ``phase`` event, with the time its phase began."""

    name: str
    message: str
    progress: float | None = None
    started: float | None = None  # unix time of the first event of this phase

    @classmethod
    def of(cls, e: ev.Phase, started: float | None = None) -> PhaseView:
        """The view of one ``phase`` event; what an older or broken trainer left out gets a default."""
        name = str(e.name or "") or "working"
        message = str(e.message or "").strip().rstrip(".…") or name.replace("_", " ").capitalize()
        progress = num(e.progress)
        if progress is not None:
            progress = max(0.0, min(1.0, progress)) if math.isfinite(progress) else None
        return cls(name, message, progress, started or e.time or None)


@dataclass
class WarningView:
    """One warning (or the final error) with what to do about it."""

    step: int
    kind: str
    message: str
    advice: str = ""


@dataclass
class RunState:
    """Everything a viewer shows about one run, folded from its events by :meth:`apply`."""

    name: str = ""
    state: str = "starting"
    model: str = ""
    method: str = ""
    total_steps: int = 0
    config: dict = field(default_factory=dict)
    hardware: dict = field(default_factory=dict)
    estimate: dict | None = None
    step: int = 0
    epoch: float = 0.0
    elapsed_s: float = 0.0
    eta_s: float | None = None
    tokens_per_s: float | None = None
    tokens: int | None = None
    loss: float | None = None
    best_loss: float | None = None
    eval_loss: float | None = None
    best_eval_loss: float | None = None
    mem: list = field(default_factory=list)
    gpus: list = field(default_factory=list)
    series: dict[str, Series] = field(default_factory=lambda: {n: Series() for n in SERIES_NAMES})
    stage_series: dict[str, Series] = field(default_factory=dict)
    """The stage's own numbers over steps (``rewards/margins``, ``eval_rewards/accuracies``, ...),
    as the step and eval events name them (``cockpit.training.stages``)."""
    samples: dict[str, SampleView] = field(default_factory=dict)
    warnings: list[WarningView] = field(default_factory=list)
    warning_counts: dict[str, int] = field(default_factory=dict)
    checkpoints: list[tuple[int, str]] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    error: str | None = None
    advice: str | None = None
    started_time: float | None = None
    last_event_time: float | None = None
    events_seen: int = 0
    resumes: int = 0
    ended_by_event: bool = False
    ended_time: float = 0.0  # when the last run_finished/error was written
    phase: PhaseView | None = None  # set by phase events, cleared by the next step and by the end

    # -- folding ---------------------------------------------------------------------
    def apply_all(self, events: list[ev.Event]) -> None:
        for event in events:
            self.apply(event)

    def apply(self, event: ev.Event) -> None:
        """Fold one event into the state (unknown types only count as seen)."""
        self.events_seen += 1
        if event.time:
            self.last_event_time = event.time
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _run_started(self, e: ev.RunStarted) -> None:
        if self.started_time is not None:
            self.resumes += 1
        else:
            self.started_time = e.time or None
        self.model = e.model or self.model or str(e.config.get("model", ""))
        self.method = e.method or self.method or str(e.config.get("method", ""))
        self.total_steps = int(e.total_steps or self.total_steps)
        self.config = dict(e.config or self.config)
        self.hardware = dict(e.hardware or self.hardware)
        self.estimate = e.estimate if e.estimate is not None else self.estimate
        # a resumed run starts again in the same directory after it ended
        self.state, self.ended_by_event, self.error, self.advice = "running", False, None, None
        self.step = max(self.step, e.step) if e.resumed_from is None else e.step

    def _phase(self, e: ev.Phase) -> None:
        # After an end, only a resumed session writes phases; they show once its status.json
        # ("starting", newer than the end) reopens the run in merge_status.
        view = PhaseView.of(e)
        if self.phase is not None and self.phase.name == view.name:
            view.started = self.phase.started or view.started  # the same phase moving on: its clock runs on
        self.phase = view

    def _step(self, e: ev.Step) -> None:
        self.phase = None  # the training loop is running: whatever came before it is over
        self.step = e.step
        self.epoch = num(e.epoch) or 0.0
        self.elapsed_s = num(e.elapsed_s) or 0.0
        self.eta_s = num(e.eta_s)
        self.tokens_per_s = num(e.tokens_per_s)
        self.tokens = e.tokens if isinstance(e.tokens, int) else self.tokens
        if isinstance(e.mem, list) and e.mem:
            self.mem = e.mem
        loss = num(e.loss)
        if loss is not None:
            self.loss = loss
            if math.isfinite(loss) and (self.best_loss is None or loss < self.best_loss):
                self.best_loss = loss
        for name, value in (("loss", loss), ("grad_norm", num(e.grad_norm)), ("lr", num(e.lr)),
                            ("tokens_per_s", self.tokens_per_s)):
            self.series[name].add(e.step, value)
        self._stage_values(e.step, e.metrics)
        if self.state == "starting":
            self.state = "running"

    def _stage_values(self, step: int, metrics: Any) -> None:
        if not isinstance(metrics, dict):
            return
        for key, value in metrics.items():
            self.stage_series.setdefault(str(key), Series()).add(step, num(value))

    @property
    def stage(self) -> str:
        return str(self.config.get("stage") or "sft")

    def _gpu(self, e: ev.Gpu) -> None:
        if isinstance(e.devices, list):
            self.gpus = e.devices

    def _eval(self, e: ev.Eval) -> None:
        loss = num(e.eval_loss)
        self.eval_loss = loss
        self.series["eval_loss"].add(e.step, loss)
        self._stage_values(e.step, e.metrics)
        if loss is not None and math.isfinite(loss) and (self.best_eval_loss is None or loss < self.best_eval_loss):
            self.best_eval_loss = loss

    def _sample(self, e: ev.Sample) -> None:
        view = self.samples.get(e.prompt)
        if view is None:
            view = self.samples[e.prompt] = SampleView(prompt=e.prompt)
        if e.baseline is not None:
            view.baseline = e.baseline
            if e.step < view.step:
                return  # a base answer that came late (adapters off, after some steps) keeps the newer answer
        if e.output or view.step <= e.step:
            view.output, view.step = e.output, e.step

    def _warning(self, e: ev.Warning) -> None:
        self.warning_counts[e.kind] = self.warning_counts.get(e.kind, 0) + 1
        self.warnings.append(WarningView(e.step, e.kind or "warning", e.message, e.advice))
        del self.warnings[:-MAX_WARNINGS]

    def _checkpoint(self, e: ev.Checkpoint) -> None:
        self.checkpoints.append((e.step, e.path))

    def _finished(self, e: ev.RunFinished) -> None:
        self.phase = None
        self.state = e.state if e.state in FINAL_STATES else "finished"
        self.summary = dict(e.summary or {})
        self.ended_by_event = True
        self.ended_time = e.time or 0.0
        if self.state == "finished" and self.total_steps:
            self.step = max(self.step, e.step)

    def _error(self, e: ev.Error) -> None:
        self.phase = None
        self.error, self.advice = e.message, e.advice or None
        self.warnings.append(WarningView(e.step, "error", e.message, e.advice))
        self.state = "failed"
        self.ended_by_event = True
        self.ended_time = e.time or 0.0

    def merge_status(self, status: dict[str, Any]) -> None:
        """Take what ``status.json`` knows and the events do not (yet): a run still
        starting, a trainer that died without a word (effective state ``failed``)."""
        state = str(status.get("state") or "")
        if not self.total_steps and status.get("total_steps"):
            self.total_steps = int(status["total_steps"])
        self.model = self.model or str(status.get("model") or "")
        self.method = self.method or str(status.get("method") or "")
        if self.ended_by_event and state in ("starting", "running") and \
                float(status.get("updated") or 0.0) > self.ended_time:
            # Resumed after the end its events recorded: the new session is on its way.
            self.state, self.ended_by_event, self.error, self.advice = state, False, None, None
            return
        if self.ended_by_event or state in ("", "unknown"):
            return
        if state in FINAL_STATES or self.state == "starting":
            self.state = state
        if state == "failed":
            self.error = self.error or status.get("error")
            self.advice = self.advice or status.get("advice")

    # -- reading ---------------------------------------------------------------------
    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def current_phase(self) -> PhaseView | None:
        """The phase to show now: none once the run has ended (a trainer that died while
        loading leaves its last phase behind, and only ``status.json`` tells)."""
        return None if self.is_final else self.phase

    @property
    def progress(self) -> float:
        """Share of the optimizer steps done, 0..1 (1 once the run finished)."""
        if self.state == "finished":
            return 1.0
        if not self.total_steps:
            return 0.0
        return max(0.0, min(1.0, self.step / self.total_steps))

    def snapshot(self) -> RunState:
        """An independent copy, safe to hand from the following thread to the UI."""
        other = copy.copy(self)
        other.series = {k: s.copy() for k, s in self.series.items()}
        other.samples = {k: copy.copy(v) for k, v in self.samples.items()}
        other.warnings = list(self.warnings)
        other.warning_counts = dict(self.warning_counts)
        other.checkpoints = list(self.checkpoints)
        other.mem = list(self.mem)
        other.gpus = list(self.gpus)
        return other


_HANDLERS: dict[type, Callable[[RunState, Any], None]] = {
    ev.RunStarted: RunState._run_started,
    ev.Phase: RunState._phase,
    ev.Step: RunState._step,
    ev.Gpu: RunState._gpu,
    ev.Eval: RunState._eval,
    ev.Sample: RunState._sample,
    ev.Warning: RunState._warning,
    ev.Checkpoint: RunState._checkpoint,
    ev.RunFinished: RunState._finished,
    ev.Error: RunState._error,
}


class RunFollower:
    """Reads a run directory incrementally; each :meth:`poll` folds what is new.

    ``status.json`` is read *before* the event log, so once the status says the run
    ended, every event the trainer wrote before that is already in the same poll.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.tail = ev.EventTail(self.run_dir / EVENTS_FILE)
        self.state = RunState(name=self.run_dir.name)
        self.status: dict[str, Any] = {}

    def poll(self) -> list[ev.Event]:
        """New events since the last poll (the whole history on the first)."""
        self.status = effective_status(self.run_dir)
        events = self.tail.read_new()
        self.state.apply_all(events)
        self.state.merge_status(self.status)
        return events

    @property
    def done(self) -> bool:
        """The run has ended and everything it wrote has been read."""
        return self.state.is_final


def follow(run_dir: str | Path, on_events: Callable[[list[ev.Event], RunState], None], *,
           interval: float = 0.25, should_stop: Callable[[], bool] = lambda: False,
           sleep: Callable[[float], None] = time.sleep,
           on_poll: Callable[[RunState], None] | None = None) -> RunState:
    """Replay a run's history, then follow it until it ends (or ``should_stop()``).

    ``on_events`` gets each non-empty batch and the state after it; at most one batch
    per ``interval`` seconds, which is what keeps a viewer's redraw rate modest.
    ``on_poll`` gets the state after every poll, new events or not (a clock that ticks).
    """
    follower = RunFollower(run_dir)
    while True:
        events = follower.poll()
        if events:
            on_events(events, follower.state)
        if on_poll is not None:
            on_poll(follower.state)
        if follower.done or should_stop():
            return follower.state
        sleep(interval)
