"""A run's events as readable lines, for the viewers without a screen.

``attach --plain``, ``train --foreground`` and ``wizard --plain`` show the same lines:
:func:`format_event` turns one event into one line. The printing is the CLI's
(:mod:`cockpit.cli.console`); nothing here writes to a terminal.
"""

from __future__ import annotations

from typing import Any

from cockpit.run import events as ev
from cockpit.run.follow import PhaseView, fmt_bytes, fmt_duration, fmt_num, num, phase_line, summary_line
from cockpit.training.stages import stage_words

def format_event(e: ev.Event, total_steps: int = 0) -> str:
    """One readable line for an event (what ``attach --plain`` prints)."""
    at = f"step {e.step}/{total_steps}" if total_steps else f"step {e.step}"
    if isinstance(e, ev.RunStarted):
        again = f" (resumed from {e.resumed_from})" if e.resumed_from else ""
        return f"run started{again}: {e.model or '?'} with {e.method or '?'}, {e.total_steps} steps"
    if isinstance(e, ev.Phase):
        line = phase_line(PhaseView.of(e))
        return f"{at}  {line}" if e.step else line
    if isinstance(e, ev.Step):
        parts = [at, f"loss {fmt_num(num(e.loss))}", *stage_words(e.metrics)]
        if e.grad_norm is not None:
            parts.append(f"grad {fmt_num(num(e.grad_norm), 3)}")
        if e.lr is not None:
            parts.append(f"lr {fmt_num(num(e.lr), 2)}")
        if e.tokens_per_s is not None:
            parts.append(f"{num(e.tokens_per_s) or 0:,.0f} tok/s")
        if e.eta_s is not None:
            parts.append(f"eta {fmt_duration(num(e.eta_s))}")
        return "  ".join(parts)
    if isinstance(e, ev.Gpu):
        return "  ".join(gpu_line(i, d) for i, d in enumerate(e.devices if isinstance(e.devices, list) else []))
    if isinstance(e, ev.Eval):
        return "  ".join([at, f"eval loss {fmt_num(num(e.eval_loss))}", *stage_words(e.metrics, "eval_")])
    if isinstance(e, ev.Sample):
        if e.baseline is not None and e.output == e.baseline:
            # the base model's own answer (which may come after some steps: adapters switched off)
            return f"base model  sample {_short(e.prompt, 40)!r} -> {_short(e.baseline, 80)!r}"
        line = f"{at}  sample {_short(e.prompt, 40)!r} -> {_short(e.output, 80)!r}"
        return line + (f"  (base model: {_short(e.baseline, 60)!r})" if e.baseline is not None else "")
    if isinstance(e, ev.Warning):
        return f"{at}  warning {e.kind}: {e.message}" + (f" -> {e.advice}" if e.advice else "")
    if isinstance(e, ev.Checkpoint):
        return f"{at}  checkpoint saved: {e.path}"
    if isinstance(e, ev.RunFinished):
        return f"run {e.state} at {at}: " + summary_line(e.summary)
    if isinstance(e, ev.Error):
        return f"error at {at}: {e.message}" + (f" -> {e.advice}" if e.advice else "")
    raw = e.raw if isinstance(e, ev.UnknownEvent) else {}
    return f"{at}  ({raw.get('type', 'unknown')} event)"


def gpu_line(index: int, d: Any) -> str:
    """``gpu0 97% 10.2/24.0 GiB 71C 250W`` from one device of a ``gpu`` event."""
    if not isinstance(d, dict):
        return f"gpu{index} ?"
    parts = [f"gpu{d.get('index', index)}"]
    if num(d.get("util")) is not None:
        parts.append(f"{num(d.get('util')):.0f}%")
    if num(d.get("mem_total")):
        parts.append(f"{fmt_bytes(num(d.get('mem_used')))}/{fmt_bytes(num(d.get('mem_total')))}")
    if num(d.get("temp_c")) is not None:
        parts.append(f"{num(d.get('temp_c')):.0f}C")
    if num(d.get("power_w")) is not None:
        parts.append(f"{num(d.get('power_w')):.0f}W")
    return " ".join(parts)


def _short(text: str | None, n: int) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


__all__ = ["format_event", "gpu_line"]
