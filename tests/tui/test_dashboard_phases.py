"""The dashboard says what the trainer does before its first step: a recorded start replayed
event by event, each phase on screen within a second, its clock ticking without new events,
and the base model's answers arriving after the first steps."""

from __future__ import annotations

import dataclasses
import os
import re
import time

from cockpit.run import events as ev
from cockpit.run.follow import PhaseView
from cockpit.run.status import write_status
from screens.dashboard import DashboardScreen
from tests.tui.conftest import HERE, make_app, run_async, wait_for
from widgets.samples import SamplesPanel
from widgets.system import RunProgress

STARTUP = HERE / "fixtures" / "startup" / "2026-12-02_13-35-48"  # `train --foreground`, cpu-demo, to step 3


def live_run(tmp_path, name=STARTUP.name):
    """An empty run directory whose "trainer" (this test) is alive."""
    run = tmp_path / "runs" / name
    run.mkdir(parents=True)
    write_status(run, state="starting", pid=os.getpid(), model="HuggingFaceTB/SmolLM2-135M-Instruct",
                 method="lora", step=0)
    return run


def progress_line(app) -> str:
    assert isinstance(app.screen, DashboardScreen), app.screen
    return app.screen.query_one(RunProgress).render().plain


def showing(app, message: str) -> bool:
    """The progress line shows this phase: its sentence (shortened to fit 80 columns, but not
    below 40 characters) and its clock."""
    m = re.match(r"(STARTING|RUNNING)( step \d+/\d+ | [█░]+ | ) *(.*)… (\d+%, )?\d+s$", progress_line(app))
    return bool(m) and message.startswith(m.group(3)) and len(m.group(3)) >= min(len(message), 40)


def test_each_recorded_phase_is_on_screen_within_a_second_of_its_event(tmp_path):
    recorded = ev.read_events(STARTUP / "events.jsonl")
    assert sum(isinstance(e, ev.Phase) for e in recorded) >= 5
    run = live_run(tmp_path)
    sink = ev.JsonlSink(run / "events.jsonl")
    app = make_app("dashboard", output_dir=run.parent, run_dir=run, now=time.time)
    latencies: dict[str, float] = {}

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.screen.updates >= 1, what="the first update")
            ran_started = False
            for event in recorded:
                ran_started = ran_started or isinstance(event, ev.RunStarted)
                sink.emit(dataclasses.replace(event, time=time.time()))  # written now, as the trainer does
                written = time.monotonic()
                if isinstance(event, ev.Phase):
                    message = PhaseView.of(event).message
                    await wait_for(pilot, lambda: showing(app, message), timeout=5, what=message)
                    latencies[message] = time.monotonic() - written
                    # before run_started the run is "starting", then "running" with the step once there is one
                    assert progress_line(app).startswith("RUNNING" if ran_started else "STARTING")
                    assert (f" step {event.step}/108 " in progress_line(app)) == bool(event.step)
                elif isinstance(event, ev.Step):
                    # the loop runs: the phase gives way to the step's numbers
                    await wait_for(pilot, lambda: f"step {event.step}/108" in progress_line(app)
                                   and "…" not in progress_line(app), timeout=5, what=f"step {event.step}")
            screen = app.screen
            await pilot.press("2")
            samples = screen.query_one("#samples-panel", SamplesPanel)
            await wait_for(pilot, lambda: len(samples._shown) == 3, what="the samples tab")
            # the base answers came after step 1: each in the base column, no "after" answer yet
            assert all(base and step == 0 for _, base, _, step in samples._shown), samples._shown

    run_async(go())
    assert len(latencies) == sum(isinstance(e, ev.Phase) for e in recorded)
    assert max(latencies.values()) < 1.0, latencies


def test_the_phase_clock_ticks_without_new_events(tmp_path):
    run = live_run(tmp_path, "ticking")
    clock = {"now": 1000.0}
    ev.JsonlSink(run / "events.jsonl").emit(ev.Phase(time=1000.0, name="loading_model",
                                                     message="Loading the model m (fp32, CPU)"))
    app = make_app("dashboard", output_dir=run.parent, run_dir=run, now=lambda: clock["now"])

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: "Loading the model m (fp32, CPU)… 0s" in progress_line(app),
                           what="the phase")
            updates = app.screen.updates
            clock["now"] = 1012.0
            await wait_for(pilot, lambda: "Loading the model m (fp32, CPU)… 12s" in progress_line(app),
                           timeout=3, what="the next tick")
            assert app.screen.updates == updates  # no new snapshot: the widget's own clock

    run_async(go())
