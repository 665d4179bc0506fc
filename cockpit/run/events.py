"""Typed training events and the sinks that record them.

The trainer reports everything a viewer needs as events (DESIGN.md section 3). Each
event is a small dataclass; one sink appends them to ``events.jsonl`` (one JSON
object per line, flushed per event) and a list sink collects them in tests.

Readers must tolerate a partial last line (the trainer may be mid-write) and unknown
event types or fields (a newer trainer than viewer): :func:`parse_event` keeps
unknown types as :class:`UnknownEvent` and ignores unknown fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator, Protocol


def _now() -> float:
    return time.time()


@dataclass(kw_only=True)
class Event:
    """Fields every event carries: its ``type`` (class constant), ``time`` and ``step``."""

    type: ClassVar[str] = "event"
    step: int = 0
    time: float = field(default_factory=_now)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form written to ``events.jsonl``."""
        data = {"type": self.type}
        for f in dataclasses.fields(self):
            data[f.name] = _jsonable(getattr(self, f.name))
        return data


@dataclass(kw_only=True)
class RunStarted(Event):
    """Training begins (also after a resume): what runs, on what, and its estimate."""

    type: ClassVar[str] = "run_started"
    config: dict = field(default_factory=dict)
    model: str = ""
    method: str = ""
    total_steps: int = 0
    hardware: dict = field(default_factory=dict)
    estimate: dict | None = None
    resumed_from: str | None = None


@dataclass(kw_only=True)
class Phase(Event):
    """A long step outside the training loop has begun (startup above all), so a viewer can
    say what the trainer is doing: ``name`` is a stable key (materializing, loading_model,
    baseline_samples, ...), ``message`` the sentence to show, ``progress`` 0..1 or None.

    A phase lasts until the next phase, the next ``step`` or the end of the run; several
    events with the same ``name`` in a row are one phase whose message or progress moved on.
    """

    type: ClassVar[str] = "phase"
    name: str = ""
    message: str = ""
    progress: float | None = None


@dataclass(kw_only=True)
class Step(Event):
    """One logged optimizer step; ``mem`` has one dict per device (CPU: ``rss``)."""

    type: ClassVar[str] = "step"
    epoch: float = 0.0
    loss: float | None = None
    grad_norm: float | None = None
    lr: float | None = None
    tokens_per_s: float | None = None
    tokens: int | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None
    mem: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    """A preference stage's own numbers (``rewards/margins``, ``rewards/accuracies``, ...)."""


@dataclass(kw_only=True)
class Gpu(Event):
    """GPU telemetry: per device ``util``, ``mem_used``, ``mem_total``, ``temp_c``, ``power_w``."""

    type: ClassVar[str] = "gpu"
    devices: list = field(default_factory=list)


@dataclass(kw_only=True)
class Eval(Event):
    """An evaluation pass during training."""

    type: ClassVar[str] = "eval"
    eval_loss: float | None = None
    metrics: dict = field(default_factory=dict)


@dataclass(kw_only=True)
class Sample(Event):
    """A greedy answer to a probe prompt; ``baseline`` is the base model's answer (first time only)."""

    type: ClassVar[str] = "sample"
    prompt: str = ""
    output: str = ""
    baseline: str | None = None


@dataclass(kw_only=True)
class Warning(Event):  # noqa: A001 - the contract's name for it
    """Something looks wrong but training goes on: ``kind`` is nan, grad_spike, loss_spike, mem_high, ..."""

    type: ClassVar[str] = "warning"
    kind: str = ""
    message: str = ""
    advice: str = ""


@dataclass(kw_only=True)
class Checkpoint(Event):
    """A complete checkpoint was written."""

    type: ClassVar[str] = "checkpoint"
    path: str = ""


@dataclass(kw_only=True)
class RunFinished(Event):
    """The run ended: ``state`` is finished, stopped or failed; ``summary`` the final numbers."""

    type: ClassVar[str] = "run_finished"
    state: str = "finished"
    summary: dict = field(default_factory=dict)


@dataclass(kw_only=True)
class Error(Event):
    """The run failed: what happened and what to do."""

    type: ClassVar[str] = "error"
    message: str = ""
    advice: str = ""


@dataclass(kw_only=True)
class UnknownEvent(Event):
    """An event of a type this reader does not know (kept, never an error)."""

    type: ClassVar[str] = "unknown"
    raw: dict = field(default_factory=dict)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls for cls in (RunStarted, Phase, Step, Gpu, Eval, Sample, Warning, Checkpoint, RunFinished, Error)
}


def parse_event(data: dict[str, Any]) -> Event:
    """Build the typed event for a decoded line; unknown types and fields are tolerated."""
    cls = EVENT_TYPES.get(str(data.get("type")))
    if cls is None:
        return UnknownEvent(step=_int(data.get("step")), time=_float(data.get("time")), raw=data)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    kwargs["step"] = _int(kwargs.get("step"))
    kwargs["time"] = _float(kwargs.get("time"))
    return cls(**kwargs)


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a corrupt line's 1e400
        return 0


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past float range
        return 0.0


def _jsonable(value: Any) -> Any:
    """JSON has no NaN/inf: write them as strings so every line stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


class EventSink(Protocol):
    """Anything that takes events: the JSONL file, a test list, a fan-out."""

    def emit(self, event: Event) -> None: ...


class NullSink:
    """Drops events: the sink of every DDP rank but rank 0, which alone writes the log."""

    def emit(self, event: Event) -> None:
        pass


class ListSink:
    """Collects events in memory (tests)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, cls: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, cls)]


class JsonlSink:
    """Appends events to ``events.jsonl``, one line each, flushed per event.

    One ``write`` call per line on a file opened in append mode, so a reader never sees
    two events interleaved; a crash can leave at most a partial last line.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        # backslashreplace: a lone surrogate (a non-UTF-8 file name, a "\ud800" in a dataset)
        # can only sit inside a JSON string, where it becomes the JSON escape \udXXX
        self._fh = open(self.path, "a", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        if _ends_mid_line(self.path):
            # A killed trainer's partial last line: end it, so that the first event of this
            # session is not glued to it (and lost with it as one corrupt line).
            self._fh.write("\n")
            self._fh.flush()

    def emit(self, event: Event) -> None:
        line = json.dumps(event.to_dict(), ensure_ascii=False, allow_nan=False) + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()


class EventTail:
    """Incremental reader of ``events.jsonl``: each :meth:`read_new` returns the events
    completed since the last call. A partial last line is left for the next call; a
    corrupt line is skipped (counted in ``bad_lines``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.offset = 0
        self.bad_lines = 0
        self._pending = b""

    def read_new(self) -> list[Event]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self._pending + chunk
        lines = data.split(b"\n")
        self._pending = lines.pop()  # b"" when data ended with a newline
        events = []
        for raw in lines:
            if not raw.strip():
                continue
            try:
                decoded = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                self.bad_lines += 1
                continue
            if isinstance(decoded, dict):
                events.append(parse_event(decoded))
            else:
                self.bad_lines += 1
        return events


def read_events(path: str | os.PathLike[str]) -> list[Event]:
    """All complete events in a file (a partial last line is ignored)."""
    return EventTail(path).read_new()


def iter_dicts(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The complete events of a file as plain dicts (what was written, field for field)."""
    for event in read_events(path):
        yield event.raw if isinstance(event, UnknownEvent) else event.to_dict()


def _ends_mid_line(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except OSError:
        return False
