"""Screenshots of every wizard step and the dashboard, at 80x24 and 120x40.

Deterministic by construction: a fixed clock, fixed hardware, recorded runs, paths
relative to the repository, no blinking cursor. Review a change with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and the HTML report.
"""

from __future__ import annotations

import pytest

from cockpit.config import BUNDLED_MODEL
from cockpit.app import runs as services
from screens.data import DataScreen
from screens.hardware import HardwareScreen
from screens.method import MethodScreen
from screens.model import ModelScreen
from screens.review import ReviewScreen
from screens.start import StartScreen
from cockpit.app.wizard import DataChoice, MethodChoice, ModelChoice
from tests.tui.conftest import CPU_RUN, GPU_RUN, cpu_profile, gpu_profile, make_app, make_engine, wait_for

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
RUNS = "tests/tui/fixtures/runs"  # relative to the repository root (the at_repo fixture)
NO_RUNS = "tests/tui/fixtures/no-runs"  # does not exist: an empty list


def pushing(make_screen, ready=lambda screen: True):
    """A run_before that pushes a screen and waits until it has drawn its data."""

    async def run_before(pilot):
        screen = make_screen()
        await pilot.app.push_screen(screen)
        await wait_for(pilot, lambda: ready(screen), timeout=60, what="the screen's data")
        await pilot.pause()

    return run_before


def waiting(condition):
    async def run_before(pilot):
        await wait_for(pilot, lambda: condition(pilot.app), timeout=30, what="the screen's data")
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_welcome_with_runs(snap_compare, at_repo, size):
    assert snap_compare(make_app("wizard", output_dir=RUNS), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_hardware_cpu(snap_compare, at_repo, size):
    engine = make_engine(NO_RUNS, cpu_profile())
    assert snap_compare(make_app("runs", output_dir=NO_RUNS), terminal_size=size,
                        run_before=pushing(lambda: HardwareScreen(engine), lambda s: s.profile is not None))


@pytest.mark.parametrize("size", SIZES)
def test_model_catalog_and_advice(snap_compare, at_repo, size):
    engine = make_engine(NO_RUNS, cpu_profile())
    assert snap_compare(make_app("runs", output_dir=NO_RUNS), terminal_size=size,
                        run_before=pushing(lambda: ModelScreen(engine)))


@pytest.mark.parametrize("size", SIZES)
def test_method_8b_on_a_24gb_gpu(snap_compare, at_repo, size):
    engine = make_engine(NO_RUNS, gpu_profile())
    assert snap_compare(make_app("runs", output_dir=NO_RUNS), terminal_size=size,
                        run_before=pushing(lambda: MethodScreen(engine, "meta-llama/Llama-3.1-8B"),
                                           lambda s: s.plan is not None))


@pytest.mark.parametrize("size", SIZES)
def test_data_demo_report(snap_compare, at_repo, tiny_model_dir, size):
    engine = make_engine(NO_RUNS, cpu_profile())
    assert snap_compare(make_app("runs", output_dir=NO_RUNS), terminal_size=size,
                        run_before=pushing(lambda: DataScreen(engine, str(tiny_model_dir), 256),
                                           lambda s: s.view is not None))


def review_screen():
    engine = make_engine("outputs/runs", cpu_profile())
    return ReviewScreen(engine, ModelChoice(BUNDLED_MODEL), engine.default_method(),
                        DataChoice(examples=72, mean_tokens=96.9), 96.9, {"epochs": 3})


@pytest.mark.parametrize("size", SIZES)
def test_review(snap_compare, at_repo, size):
    assert snap_compare(make_app("runs", output_dir=NO_RUNS), terminal_size=size,
                        run_before=pushing(review_screen, lambda s: s.cfg is not None))


@pytest.mark.parametrize("size", SIZES)
def test_start(snap_compare, at_repo, size):
    engine = make_engine("outputs/runs", cpu_profile())
    cfg = engine.build_config(ModelChoice(), MethodChoice(max_length=256), DataChoice())
    assert snap_compare(make_app("runs", output_dir=NO_RUNS), terminal_size=size,
                        run_before=pushing(lambda: StartScreen(engine, cfg)))


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_finished_gpu_run(snap_compare, at_repo, size):
    app = make_app("dashboard", output_dir=RUNS, run_dir=f"{RUNS}/{GPU_RUN}")
    assert snap_compare(app, terminal_size=size, run_before=waiting(lambda a: a.screen.state.is_final))


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_samples_of_the_cpu_recording(snap_compare, at_repo, size):
    app = make_app("dashboard", output_dir=RUNS, run_dir=f"{RUNS}/{CPU_RUN}")
    assert snap_compare(app, terminal_size=size, press=["2"], run_before=waiting(lambda a: a.screen.state.is_final))


DPO_RUNS = "tests/tui/fixtures/dpo-runs"  # a real DPO run on the bundled model, after a 2-epoch SFT run
DPO_RUN = "2026-12-03_10-35-54-cpu-dpo"


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_of_a_dpo_run_charts_reward_margin_and_accuracy(snap_compare, at_repo, size):
    app = make_app("dashboard", output_dir=DPO_RUNS, run_dir=f"{DPO_RUNS}/{DPO_RUN}")
    assert snap_compare(app, terminal_size=size, run_before=waiting(lambda a: a.screen.state.is_final))


def test_dashboard_warnings(snap_compare, at_repo):
    app = make_app("dashboard", output_dir=RUNS, run_dir=f"{RUNS}/{GPU_RUN}")
    assert snap_compare(app, press=["3"], run_before=waiting(lambda a: a.screen.state.is_final))


def test_dashboard_export(snap_compare, at_repo, monkeypatch):
    monkeypatch.setattr(services, "llama_runtime_missing", lambda: False)  # the same screen on every machine
    app = make_app("dashboard", output_dir=RUNS, run_dir=f"{RUNS}/{GPU_RUN}")
    assert snap_compare(app, press=["e"], run_before=waiting(lambda a: a.screen.state.is_final))


def test_help(snap_compare, at_repo):
    app = make_app("dashboard", output_dir=RUNS, run_dir=f"{RUNS}/{GPU_RUN}")
    assert snap_compare(app, press=["question_mark"], run_before=waiting(lambda a: a.screen.state.is_final))


@pytest.mark.parametrize("size", SIZES)
def test_runs(snap_compare, at_repo, size):
    assert snap_compare(make_app("runs", output_dir=RUNS), terminal_size=size)


def test_dashboard_light_theme(snap_compare, at_repo):
    app = make_app("dashboard", output_dir=RUNS, run_dir=f"{RUNS}/{GPU_RUN}", light=True)
    assert snap_compare(app, terminal_size=(120, 40), run_before=waiting(lambda a: a.screen.state.is_final))


def startup_run(tmp_path, until: str):
    """The recorded start (tests/tui/fixtures/startup) up to the first phase event whose message
    contains ``until``, in a run directory whose "trainer" is alive; the phase's event time."""
    import os

    from cockpit.run import events as ev
    from cockpit.run.status import write_status
    from tests.tui.test_dashboard_phases import STARTUP

    run = tmp_path / STARTUP.name
    run.mkdir()
    write_status(run, state="starting", pid=os.getpid(), model=BUNDLED_MODEL, method="lora", step=0)
    sink = ev.JsonlSink(run / "events.jsonl")
    first_of_phase = None
    for event in ev.read_events(STARTUP / "events.jsonl"):
        sink.emit(event)
        if isinstance(event, ev.Phase):
            first_of_phase = first_of_phase if first_of_phase and first_of_phase.name == event.name else event
            if until in event.message:
                return run, first_of_phase.time
    raise AssertionError(f"no phase {until!r} in the recording")


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_while_the_model_loads(snap_compare, tmp_path, size):
    run, started = startup_run(tmp_path, "Loading the model")
    app = make_app("dashboard", output_dir=tmp_path, run_dir=run, now=lambda: started + 12)
    assert snap_compare(app, terminal_size=size, run_before=waiting(lambda a: a.screen.state.phase is not None))


def test_dashboard_base_answers_after_the_first_step(snap_compare, tmp_path):
    run, started = startup_run(tmp_path, "prompt 2 of 3")
    app = make_app("dashboard", output_dir=tmp_path, run_dir=run, now=lambda: started + 9)
    assert snap_compare(app, terminal_size=(120, 40),
                        run_before=waiting(lambda a: a.screen.state.samples and a.screen.state.phase is not None))
