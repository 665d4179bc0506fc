"""What one run's directory says, read for comparing it with others (:mod:`cockpit.evaluation.compare`):
the tokens seen by each logged step, its peak memory, how long its sessions lasted, its
settings and the numbers ``llm-cockpit eval`` left in its ``eval.json``.

Each function takes what the run recorded (its events, its files) and tolerates what an
older or newer trainer left out or added.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from cockpit.run import events as ev
from cockpit.errors import CockpitError
from cockpit.run.follow import RunState
from cockpit.run.rundir import CONFIG_FILE
from cockpit.run.words import num

EVAL_FILE = "eval.json"  # cockpit.evaluation.heldout.EVAL_FILE (not imported: that module loads models' code)
_EVAL_FILE_FIELDS = ("version", "created", "data", "max_new_tokens", "finetuned", "baseline")


def tokens_seen(steps: list[ev.Step]) -> tuple[dict[int, float], str]:
    """Tokens seen by each logged step, and where they come from.

    Step events carry ``tokens``, the running total (resumed runs continue it). A step
    without one (a trainer from before it was recorded) gets the last known total plus its
    logged tokens/s times the time since the previous logged step (``elapsed_s`` restarts
    at 0 in each session): an estimate, reported as ``derived``."""
    at: dict[int, float] = {}
    total: float | None = None
    prev_elapsed = 0.0
    recorded = derived = 0
    for e in steps:
        elapsed = num(e.elapsed_s)
        if isinstance(e.tokens, (int, float)) and not isinstance(e.tokens, bool) and math.isfinite(e.tokens):
            total = float(e.tokens)
            recorded += 1
        else:
            speed = num(e.tokens_per_s)
            if speed is not None and elapsed is not None and math.isfinite(speed) and math.isfinite(elapsed):
                dt = elapsed - prev_elapsed if elapsed >= prev_elapsed else elapsed
                total = (total or 0.0) + speed * max(0.0, dt)
                derived += 1
        if elapsed is not None and math.isfinite(elapsed):
            prev_elapsed = elapsed
        if total is not None:
            at[e.step] = total
    return at, "derived" if derived else "recorded" if recorded else "none"


def peak_memory(steps: list[ev.Step]) -> tuple[float | None, str]:
    """The highest peak any step reported: of the GPUs when there are any, else of the
    process on CPU; and which (``gpu`` / ``cpu`` / empty)."""
    gpu: list[float] = []
    cpu: list[float] = []
    for e in steps:
        for dev in e.mem if isinstance(e.mem, list) else []:
            if not isinstance(dev, dict):
                continue
            value = num(dev.get("peak"))
            value = value if value is not None else num(dev.get("reserved") or dev.get("allocated") or dev.get("rss"))
            if value is None or not math.isfinite(value):
                continue
            (cpu if str(dev.get("device", "cpu")) == "cpu" else gpu).append(value)
    if gpu:
        return max(gpu), "gpu"
    return (max(cpu), "cpu") if cpu else (None, "")


def wall_time(events: list[ev.Event]) -> float | None:
    """Seconds the run's sessions lasted: each from its ``run_started`` to its last event
    (the time a stopped run sat waiting for its resume does not count)."""
    total, start, last = 0.0, None, None
    for e in events:
        if not e.time:
            continue
        if isinstance(e, ev.RunStarted):
            if start is not None and last is not None:
                total += last - start
            start = e.time
        elif start is None:
            start = e.time
        last = e.time
    if start is None or last is None:
        return None
    return total + (last - start)


def run_settings(path: Path, state: RunState) -> tuple[dict[str, Any], str]:
    """The run's settings: ``config_used.yaml`` with every default filled in; its raw keys
    when it does not validate (a run of another version); the ``run_started`` event's
    config when there is no file."""
    from cockpit.config import config_from_dict, load_config_file

    file = path / CONFIG_FILE
    if file.exists():
        try:
            return load_config_file(file).to_dict(), ""
        except CockpitError as exc:
            raw = raw_yaml(file)
            if raw is not None:
                return raw, f"settings read as written ({exc.message})"
            return dict(state.config), f"settings from its event log ({exc.message})"
    try:
        return config_from_dict(dict(state.config)).to_dict(), f"settings from its event log (no {CONFIG_FILE})"
    except CockpitError:
        return dict(state.config), f"settings from its event log (no {CONFIG_FILE})"


def raw_yaml(file: Path) -> dict[str, Any] | None:
    import yaml

    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def eval_metrics(path: Path) -> dict[str, float]:
    """Every number in ``eval.json`` that describes the run: the fine-tuned model's metrics
    (``eval.<name>``, nested sections as ``eval.<section>.<name>``) and those of any other
    section a newer ``llm-cockpit eval`` adds (``regression.<name>``). The base model's
    numbers, the examples and the file's bookkeeping are not the run's."""
    try:
        data = json.loads((path / EVAL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, float] = {}
    tuned = data.get("finetuned")
    if isinstance(tuned, dict):
        flatten(tuned.get("metrics"), "eval", out)
    for key, value in data.items():
        if key not in _EVAL_FILE_FIELDS and isinstance(value, dict):
            flatten(value, str(key), out)
    return out


def flatten(value: Any, prefix: str, out: dict[str, float]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if str(key) in ("baseline", "base", "examples") and isinstance(inner, (dict, list)):
                continue
            flatten(inner, f"{prefix}.{key}", out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out[prefix] = float(value)
