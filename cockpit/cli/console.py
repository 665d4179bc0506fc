"""What the CLI prints while a run goes on: the plain viewers' lines on a terminal.

Shared by the commands (train, resume, attach, eval's demo, wizard --plain); the lines
themselves come from :func:`cockpit.run.plain.format_event`, so every plain viewer says
the same thing. The engine never prints: this module is where its events meet a terminal.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from cockpit.run import events as ev
from cockpit.run.follow import phase_line
from cockpit.run.plain import format_event

PHASE_TICK_S = 10.0  # how often attach --plain repeats a long phase with its time so far


def echo_event(event: ev.Event) -> None:
    """One line per event on stderr (a run trained in this process: ``train --foreground``)."""
    print(format_event(event), file=sys.stderr, flush=True)


def progress_printer(what: str, every: float = 2.0):
    """A ``progress(message, fraction)`` printing to stderr: nothing for the first ``every``
    seconds (a small dataset's check stays quiet), then at most one line every ``every``
    seconds, and the last word once anything was said."""
    t0 = time.time()
    last: list[float | None] = [None]

    def show(message: str, fraction: float | None) -> None:
        now = time.time()
        final = fraction is not None and fraction >= 1.0
        if (now - t0 < every) if last[0] is None else (now - last[0] < every and not final):
            return
        last[0] = now
        pct = f" ({fraction:.0%})" if fraction is not None and not final else ""
        print(f"{what}: {message}{pct}", file=sys.stderr, flush=True)

    return show


def attach_plain(run_dir: Path, *, interval: float = 0.5, out=None, since: float | None = None,
                 tick: float = PHASE_TICK_S, now=time.time) -> int:
    """Print a run's history, then its new events as they come, until it ends.

    With ``since`` (a time), events written before it are not printed. While the trainer
    is in a long phase (loading the model, the base model's answers, ...), the phase is
    printed again every ``tick`` seconds with how long it has lasted, so a quiet
    terminal still says what is happening.

    Exit status: 0 when the run finished or was stopped, 1 when it failed; Ctrl+C
    detaches (0) and leaves the trainer running.
    """
    from cockpit.run.follow import follow

    out = out or sys.stdout

    said: dict = {"phase": None, "at": 0.0}  # the phase last printed, and when

    def show(events, state) -> None:
        for event in events:
            if since is None or (event.time or 0.0) >= since:
                print(format_event(event, state.total_steps), file=out, flush=True)
                if isinstance(event, ev.Phase):
                    said["phase"], said["at"] = state.phase and (state.phase.name, state.phase.started), now()

    def ticking(state) -> None:
        phase = state.current_phase
        if phase is None or (since is not None and (phase.started or 0.0) < since):
            return
        key = (phase.name, phase.started)
        if key != said["phase"]:  # its line was not printed (filtered out): the tick counts from here
            said["phase"], said["at"] = key, now()
        elif now() - said["at"] >= tick:
            print("  " + phase_line(phase, now()), file=out, flush=True)
            said["at"] = now()

    print(f"following {run_dir} (Ctrl+C detaches; training continues)", file=sys.stderr, flush=True)
    try:
        state = follow(run_dir, show, interval=interval, on_poll=ticking)
    except KeyboardInterrupt:
        print(f"detached; training continues. Come back with: llm-cockpit attach {run_dir.name}",
              file=sys.stderr)
        return 0
    if state.state == "failed" and not state.ended_by_event:
        # the trainer died without writing its end (killed, crashed): status.json tells
        print(f"run failed: {state.error or 'the trainer ended without a word'}"
              + (f" -> {state.advice}" if state.advice else ""), file=out, flush=True)
    return 1 if state.state == "failed" else 0


__all__ = ["attach_plain", "echo_event", "progress_printer", "PHASE_TICK_S"]
