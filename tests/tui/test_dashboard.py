"""The dashboard at 80x24: replaying recorded runs, following a live one, stop, detach, export."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

from textual.widgets import Checkbox, DataTable, TabbedContent

from cockpit.run import events as ev
from cockpit.run.status import read_status, write_status
from screens.confirm import ConfirmScreen
from screens.dashboard import DashboardScreen
from screens.export import ExportScreen
from widgets.command import CommandLog
from screens.help import HelpScreen
from screens.runs import RunsScreen
from tests.tui.conftest import CPU_RUN, GPU_RUN, make_app, run_async, wait_for
from widgets.chart import LineChart
from widgets.system import RunProgress


def dashboard(app) -> DashboardScreen:
    assert isinstance(app.screen, DashboardScreen), app.screen
    return app.screen


def test_finished_gpu_run_replays_with_keys_for_every_panel(runs_copy):
    app = make_app("dashboard", output_dir=runs_copy, run_dir=runs_copy / GPU_RUN)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.screen.state.state == "finished", what="the replay")
            screen = dashboard(app)
            assert len(screen.query_one("#chart-loss", LineChart).series[0][0]) == 120
            assert len(screen.query_one("#chart-loss", LineChart).series[1][0]) == 6  # eval points
            assert screen.query_one(RunProgress).render().plain.startswith("FINISHED")
            for key, tab in (("2", "samples"), ("3", "warnings"), ("4", "details"), ("1", "overview")):
                await pilot.press(key)
                assert screen.query_one(TabbedContent).active == tab
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            await pilot.press("s")  # a finished run has nothing to stop: no question asked
            assert app.screen is screen
            await pilot.press("e")
            assert isinstance(app.screen, ExportScreen)
            command = str(app.screen.query_one("#command").render())
            assert f"llm-cockpit export {runs_copy / GPU_RUN} --to ollama --quant q8_0" in command
            await pilot.press("escape")
            await pilot.press("q")
        assert app.detached_from == runs_copy / GPU_RUN
        assert app.return_code == 0

    run_async(go())


def test_stopped_cpu_recording_offers_to_continue_and_lists_runs(runs_copy):
    app = make_app("runs", output_dir=runs_copy)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            assert isinstance(app.screen, RunsScreen)
            table = app.screen.query_one(DataTable)
            assert table.row_count == 2
            assert [table.get_row_at(i)[0] for i in range(2)] == [CPU_RUN, GPU_RUN]  # newest first
            assert str(table.get_row_at(0)[-1]) == "37m ago" and str(table.get_row_at(1)[-1]) == "15h ago"
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen)
                           and app.screen.state.state == "stopped", what="the CPU run")
            latest = str(app.screen.query_one("#latest-warning").render())
            assert "stopped at step 11" in latest and "c: continue" in latest
            await pilot.press("e")  # not finished: no export screen
            assert isinstance(app.screen, DashboardScreen)
            await pilot.press("r")
            assert isinstance(app.screen, RunsScreen)

    run_async(go())


def test_live_run_is_followed_with_at_most_four_updates_a_second(tmp_path):
    run = tmp_path / "runs" / "live"
    run.mkdir(parents=True)
    write_status(run, state="running", pid=os.getpid(), total_steps=400)
    sink = ev.JsonlSink(run / "events.jsonl")
    sink.emit(ev.RunStarted(total_steps=400, model="m", method="lora"))
    app = make_app("dashboard", output_dir=tmp_path / "runs", run_dir=run)

    def trainer():
        for step in range(1, 401):  # ~400 events a second: far more than a screen should redraw
            sink.emit(ev.Step(step=step, loss=3.0 / step, grad_norm=1.0, lr=1e-4, tokens_per_s=1000.0,
                              mem=[{"device": "cuda:0", "allocated": 1, "reserved": 2, "peak": 2, "total": 8}]))
            time.sleep(0.0025)
        sink.emit(ev.RunFinished(step=400, state="finished", summary={"final_loss": 0.0075}))
        write_status(run, state="finished")

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: dashboard(app).updates >= 1, what="the first update")
            started = time.monotonic()
            thread = threading.Thread(target=trainer)
            thread.start()
            await wait_for(pilot, lambda: dashboard(app).state.state == "finished", what="the end of the run")
            elapsed = time.monotonic() - started
            thread.join()
            screen = dashboard(app)
            assert screen.state.step == 400 and len(screen.state.series["loss"]) == 400
            # one update per poll at most (0.25 s), plus the one at the start
            assert screen.updates <= elapsed / 0.25 + 3, (screen.updates, elapsed)
            assert screen.updates >= 2

    run_async(go())


TRAINER = textwrap.dedent("""
    import signal, sys, time
    from cockpit.run import events as ev
    from cockpit.run.status import write_status
    run = sys.argv[1]
    sink = ev.JsonlSink(run + "/events.jsonl")
    def stop(*_):
        sink.emit(ev.Checkpoint(step=2, path="checkpoints/checkpoint-2"))
        sink.emit(ev.RunFinished(step=2, state="stopped", summary={}))
        write_status(run, state="stopped")
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    sink.emit(ev.RunStarted(total_steps=100, model="m", method="lora"))
    sink.emit(ev.Step(step=1, loss=2.0))
    sink.emit(ev.Step(step=2, loss=1.5))
    write_status(run, state="running")
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
""")


def test_stop_asks_first_then_the_trainer_stops_gracefully(tmp_path):
    run = tmp_path / "runs" / "live"
    run.mkdir(parents=True)
    trainer = subprocess.Popen([sys.executable, "-c", TRAINER, str(run)], stdout=subprocess.PIPE, text=True)
    assert trainer.stdout.readline().strip() == "ready"
    write_status(run, pid=trainer.pid)
    app = make_app("dashboard", output_dir=tmp_path / "runs", run_dir=run)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: dashboard(app).state.step == 2, what="two steps")
            await pilot.press("s")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")  # keep training
            assert isinstance(app.screen, DashboardScreen) and trainer.poll() is None
            await pilot.press("s")
            await pilot.press("y")
            await wait_for(pilot, lambda: dashboard(app).state.state == "stopped", what="the stop")
            assert dashboard(app).state.checkpoints == [(2, "checkpoints/checkpoint-2")]

    try:
        run_async(go())
        assert trainer.wait(timeout=10) == 0
        assert read_status(run)["state"] == "stopped"
    finally:
        trainer.kill()


def test_export_runs_the_export_command_and_shows_its_output(runs_copy):
    app = make_app("runs", output_dir=runs_copy)
    screen = ExportScreen(runs_copy / GPU_RUN)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await app.push_screen(screen)
            await pilot.pause()
            await pilot.click("#run")
            log = screen.query_one("#log")
            await wait_for(pilot, lambda: any("has no model/ directory" in line for line in log.lines),
                           timeout=60, what="the export's answer")
            assert log.lines[0].startswith("$ ") and "export" in log.lines[0]
            await wait_for(pilot, lambda: not screen.query_one("#run").disabled, what="the end of the command")

    run_async(go())


def test_export_without_llama_cpp_offers_the_install_ticked_for_k_quants(runs_copy):
    app = make_app("runs", output_dir=runs_copy)
    screen = ExportScreen(runs_copy / GPU_RUN, runtime_missing=True)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await app.push_screen(screen)
            await pilot.pause()
            box = screen.query_one("#install-runtime", Checkbox)
            assert "proof will be skipped" in str(screen.query_one("#runtime-note").render()) and not box.value
            assert "--install-runtime" not in str(screen.query_one("#command").render())
            screen.query_one("#quant").value = "q4_k_m"
            await pilot.pause()
            assert box.value and "q4_k_m needs llama.cpp's quantizer" in str(screen.query_one("#runtime-note").render())
            assert str(screen.query_one("#command").render()).rstrip().endswith("--install-runtime")
            for widget in (box, screen.query_one("#run"), screen.query_one("#log")):  # all of it fits at 80x24
                assert screen.region.contains_region(widget.region), widget
            await pilot.click("#run")
            log = screen.query_one("#log")
            await wait_for(pilot, lambda: any("has no model/ directory" in line for line in log.lines),
                           timeout=60, what="the export's answer")
            assert log.lines[0].endswith("--install-runtime")  # the command that ran asked for the install

    run_async(go())


def test_the_export_command_follows_the_name_typed(runs_copy):
    app = make_app("runs", output_dir=runs_copy)
    screen = ExportScreen(runs_copy / GPU_RUN, runtime_missing=False)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await app.push_screen(screen)
            await pilot.pause()
            assert screen.query("#run") and not screen.query_one(CommandLog).running  # nothing ran yet
            screen.query_one("#name").focus()
            await pilot.press("end", *"-v2")
            assert "--name cockpit-2026-11-20-14-00-00-gpu-qlora-v2" in str(screen.query_one("#command").render())
            await pilot.press("escape")
            assert app.screen is not screen

    run_async(go())


def test_export_to_the_hub_asks_for_a_repository_name(runs_copy):
    app = make_app("runs", output_dir=runs_copy)
    screen = ExportScreen(runs_copy / GPU_RUN, runtime_missing=False)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await app.push_screen(screen)
            await pilot.pause()
            screen.query_one("#target").value = "hf"
            await pilot.pause()
            command = str(screen.query_one("#command").render())
            assert command.endswith("--to hf") and screen.query_one("#name").value == ""
            screen.query_one("#target").value = "gguf"
            await pilot.pause()
            assert "--to gguf --quant q8_0 --name cockpit-" in str(screen.query_one("#command").render())

    run_async(go())


def test_side_column_shown_by_a_resize_gets_the_finished_runs_samples(runs_copy):
    """A finished run sends no more snapshots: the side column that appears when the
    terminal grows past the wide breakpoint must still be filled."""
    app = make_app("dashboard", output_dir=runs_copy, run_dir=runs_copy / GPU_RUN)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.screen.state.state == "finished", what="the replay")
            screen = dashboard(app)
            assert not screen.query_one("#side-col").display
            await pilot.resize_terminal(120, 40)
            await wait_for(pilot, lambda: screen.query_one("#side-col").display, what="the wide layout")
            await pilot.pause()
            await pilot.pause()
            assert screen.query_one("#side-samples")._shown, "the side samples were never shown"

    run_async(go())
