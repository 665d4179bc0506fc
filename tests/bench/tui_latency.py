"""How fast the cockpit answers on screen, measured in a real 80x24 pseudo-terminal.

* **first paint**: from launching the bare ``llm-cockpit`` (the wizard) until its first
  screen's text ("Welcome to llm-cockpit") arrives on the terminal. This is the wait a
  user sees; it includes Python start-up and every import of the UI.
* **event to screen**: the dashboard follows a run directory while this process appends
  ``warning`` events through :class:`cockpit.run.events.JsonlSink`, exactly as the trainer
  writes them; each warning carries a unique marker, and the time until the marker is
  painted is the whole chain: file, watcher thread, message, widget, terminal.

The run directory is synthetic (a few steps, then the warnings), with this process's
pid as the trainer's, so the dashboard treats the run as live and keeps polling at its
live rate. No training runs during these measurements.
"""

from __future__ import annotations

import random
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from tests.bench import settings as S
from tests.bench.measure import load_average
from tests.bench.terminal import PtyApp
from tests.bench.variants import cockpit_command

FIRST_SCREEN_TEXT = "Welcome to llm-cockpit"
DASHBOARD_TEXT = "Overview"


def _summary(values: list[float], failures: list[str], extra: dict) -> dict:
    return {"values_s": [round(v, 4) for v in values], "failures": failures,
            "median_s": round(statistics.median(values), 4) if values else None,
            "min_s": round(min(values), 4) if values else None, "max_s": round(max(values), 4) if values else None,
            "ok": bool(values) and not failures, **extra}


def first_paint(repeats: int = 5, timeout: float = 60.0) -> dict:
    """Median time from launching ``llm-cockpit`` to its first screen on the terminal."""
    runs_dir = S.REPO / "outputs" / "runs"
    extra = {"what": f"`llm-cockpit` until {FIRST_SCREEN_TEXT!r} is painted", "load_before": load_average(),
             "runs_listed": sum(1 for p in runs_dir.glob("*") if p.is_dir() and not p.is_symlink())
             if runs_dir.is_dir() else 0}
    values, failures = [], []
    for _ in range(repeats):
        app = PtyApp(cockpit_command(), watch=(FIRST_SCREEN_TEXT,))
        seen = app.wait_for(FIRST_SCREEN_TEXT, timeout)
        screen = app.screen_tail()
        app.close()
        if seen is None:
            failures.append(f"never painted within {timeout:.0f} s; screen: {screen[-200:]!r}")
        else:
            values.append(seen - app.started)
        time.sleep(0.5)
    return _summary(values, failures, extra)


def _fake_live_run(root: Path) -> Path:
    """A run directory that looks like a live run a few steps in (its trainer pid: ours)."""
    import os

    from cockpit.run import events as ev
    from cockpit.run.status import write_status

    run_dir = root / "runs" / "2000-01-01_00-00-00-latency"
    run_dir.mkdir(parents=True)
    write_status(run_dir, state="running", pid=os.getpid(), step=3, total_steps=100, model=S.MODEL_ID,
                 method="lora", started=time.time())
    sink = ev.JsonlSink(run_dir / "events.jsonl")
    sink.emit(ev.RunStarted(model=S.MODEL_ID, method="lora", total_steps=100))
    for step in (1, 2, 3):
        sink.emit(ev.Step(step=step, loss=3.0 - 0.2 * step, grad_norm=1.0, lr=1e-3, tokens_per_s=400.0,
                          tokens=400 * step, elapsed_s=float(step)))
    sink.close()
    return run_dir


def event_to_screen(repeats: int = 5, timeout: float = 10.0) -> dict:
    """Median time from appending a ``warning`` event to its text on the dashboard."""
    from cockpit.run import events as ev
    extra = {"what": "JsonlSink.emit(Warning) until its marker is painted on the attached dashboard",
             "load_before": load_average()}
    values, failures = [], []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        run_dir = _fake_live_run(Path(tmp))
        app = PtyApp(cockpit_command() + ["attach", str(run_dir), "--output-dir", str(run_dir.parent)],
                     watch=(DASHBOARD_TEXT,))
        try:
            if app.wait_for(DASHBOARD_TEXT, 60) is None:
                return _summary([], [f"the dashboard never painted; screen: {app.screen_tail()[-200:]!r}"], extra)
            time.sleep(1.0)  # let the first snapshot settle
            sink = ev.JsonlSink(run_dir / "events.jsonl")
            try:
                for i in range(repeats):
                    marker = f"BENCH{i}X{secrets.token_hex(3).upper()}"
                    app.watch(marker)
                    t0 = time.monotonic()
                    sink.emit(ev.Warning(step=3, kind="bench", message=f"{marker} probe"))
                    seen = app.wait_for(marker, timeout)
                    if seen is None:
                        failures.append(f"{marker} not shown within {timeout:.0f} s")
                    else:
                        values.append(seen - t0)
                    # off the watcher's polling rhythm, so the samples spread over its phase
                    time.sleep(random.uniform(0.3, 0.7))
            finally:
                sink.close()
        finally:
            app.close()
    return _summary(values, failures, extra)
