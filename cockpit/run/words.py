"""Numbers into the words both viewers show (the dashboard and ``attach --plain``).

Durations, sizes, metrics for narrow columns, ages, the current phase's line and a run's
summary. Pure functions on plain values; :mod:`cockpit.run.follow` re-exports them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cockpit.run.follow import PhaseView


def num(value: Any) -> float | None:
    """A number from an event field: ``None`` stays None, ``"nan"`` (how the sink writes
    non-finite floats) becomes ``nan``, anything unreadable becomes None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def fmt_duration(seconds: float | None) -> str:
    """``75`` -> ``1m15s``; ``None`` -> ``?``."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def fmt_bytes(n: float | None) -> str:
    """Bytes in binary units: ``1.5 GiB``."""
    if n is None or not math.isfinite(n):
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit in ("B", "KiB") else f"{n:.1f} {unit}"
        n /= 1024
    return "?"  # pragma: no cover


def fmt_num(value: float | None, digits: int = 4) -> str:
    """A metric for a narrow column: ``0.0002`` -> ``2.0e-04``, ``1.23456`` -> ``1.235``."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e5):
        return f"{value:.1e}"
    return f"{value:.{digits}g}"


def fmt_age(then: float | None, now: float) -> str:
    """How long ago ``then`` was, from ``now`` (both unix seconds): ``5m ago``."""
    if not then:
        return "-"
    delta = max(0.0, now - then)
    if delta < 60:
        return "just now"
    if delta < 3600:
        return f"{int(delta // 60)}m ago"
    if delta < 86400:
        return f"{int(delta // 3600)}h ago"
    return f"{int(delta // 86400)}d ago"


def phase_clock(phase: PhaseView, now: float | None = None) -> str:
    """``50%, 12s``: the phase's share done (when the trainer knows it) and, given ``now``,
    how long it has lasted; empty when neither is known."""
    parts = []
    if phase.progress is not None:
        parts.append(f"{phase.progress * 100:.0f}%")
    if now is not None and phase.started:
        parts.append(fmt_duration(max(0.0, now - phase.started)))
    return ", ".join(parts)


def phase_line(phase: PhaseView, now: float | None = None) -> str:
    """``Loading the model SmolLM2-135M-Instruct (fp32, CPU)… 12s``: the phase's sentence
    and its :func:`phase_clock`."""
    clock = phase_clock(phase, now)
    return f"{phase.message}…" + (f" {clock}" if clock else "")


def summary_line(summary: dict) -> str:
    """The final numbers of a run in one line."""
    if not isinstance(summary, dict) or not summary:
        return "no summary"
    labels = {"final_loss": "final loss", "best_eval_loss": "best eval loss", "duration_s": "took",
              "tokens": "tokens"}
    parts = []
    for key, label in labels.items():
        value = num(summary.get(key))
        if value is None:
            continue
        if key == "duration_s":
            parts.append(f"{label} {fmt_duration(value)}")
        elif key == "tokens":
            parts.append(f"{value:,.0f} {label}")
        else:
            parts.append(f"{label} {fmt_num(value)}")
    return ", ".join(parts) or ", ".join(f"{k} {v}" for k, v in list(summary.items())[:4])
