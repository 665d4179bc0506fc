"""The commands: attach --plain, the start-up path without torch, the no-terminal error."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from cockpit.cli.main import build_parser
from cockpit.cli.tui import default_handler
from cockpit.cli.console import attach_plain
from tests.tui.conftest import CPU_RUN, FIXTURE_RUNS, GPU_RUN, REPO


def cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "cockpit.cli.main", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout, stdin=subprocess.DEVNULL)


def test_attach_plain_prints_the_whole_history_of_a_finished_run():
    out = io.StringIO()
    assert attach_plain(FIXTURE_RUNS / GPU_RUN, interval=0.01, out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "run started: meta-llama/Llama-3.1-8B with qlora, 120 steps"
    assert sum(line.startswith("step ") and "  loss " in line for line in lines) == 120
    assert any("warning grad_spike" in line for line in lines)
    assert lines[-1].startswith("run finished at step 120/120: final loss 0.31")


def test_attach_plain_through_the_cli_names_the_run_and_exits_with_its_state():
    out = cli("attach", CPU_RUN[:10], "--plain", "--output-dir", str(FIXTURE_RUNS))
    assert out.returncode == 0, out.stderr
    assert "checkpoint saved: checkpoints/checkpoint-11" in out.stdout
    assert out.stdout.splitlines()[-1].startswith("run stopped at step 11/108")
    bad = cli("attach", "nope", "--plain", "--output-dir", str(FIXTURE_RUNS))
    assert bad.returncode == 1 and "no run named 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_full_screen_commands_need_a_terminal():
    out = cli("tui", "--output-dir", str(FIXTURE_RUNS))
    assert out.returncode == 1
    assert out.stderr.strip() == ("llm-cockpit: the full-screen cockpit needs a terminal (stdin/stdout are not "
                                  "one) -> use  llm-cockpit wizard --plain  or  llm-cockpit attach --plain")


def test_commands_are_registered_and_no_command_opens_the_cockpit():
    parser = build_parser()
    for argv in (["tui"], ["attach", "x", "--plain"], ["wizard", "--plain"]):
        assert callable(parser.parse_args(argv).func)
    assert callable(default_handler(parser))


@pytest.mark.parametrize("module", ["screens.app", "cockpit.cli.tui", "cockpit.run.follow"])
def test_ui_start_up_path_imports_no_torch(module):
    code = ("import sys, time; t = time.perf_counter(); import " + module + "; "
            "from screens.app import CockpitApp; CockpitApp(); "
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'accelerate') if m in sys.modules]; "
            "print(heavy, round(time.perf_counter() - t, 3))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("[] "), out.stdout


def test_engine_modules_of_the_viewer_import_no_textual():
    code = "import sys, cockpit.run.follow, cockpit.cli.tui; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_attach_plain_repeats_a_long_phase_with_its_time_until_the_first_step(tmp_path):
    """A quiet terminal still says what the trainer does: the phase's line when it begins,
    then the same line with its time so far every ``tick`` seconds, until the first step."""
    import os
    import re
    import threading
    import time

    from cockpit.run import events as ev
    from cockpit.run.status import write_status

    run = tmp_path / "run"
    run.mkdir()
    write_status(run, state="starting", pid=os.getpid())
    sink = ev.JsonlSink(run / "events.jsonl")
    sink.emit(ev.Phase(time=time.time() - 30, name="loading_model", message="Loading the model m (fp32, CPU)"))
    out = io.StringIO()

    def trainer():
        deadline = time.monotonic() + 20
        while "… 3" not in out.getvalue() and time.monotonic() < deadline:  # a tick line came
            time.sleep(0.02)
        sink.emit(ev.RunStarted(total_steps=2, model="m", method="lora"))
        sink.emit(ev.Step(step=1, loss=1.0))
        time.sleep(0.3)  # ticks would come now if the phase were still shown
        sink.emit(ev.RunFinished(step=1, state="stopped"))
        write_status(run, state="stopped")

    thread = threading.Thread(target=trainer)
    thread.start()
    assert attach_plain(run, interval=0.02, out=out, tick=0.1) == 0
    thread.join()
    lines = out.getvalue().splitlines()
    assert lines[0] == "Loading the model m (fp32, CPU)…"
    ticks = [line for line in lines if line.startswith("  Loading the model m (fp32, CPU)… ")]
    assert ticks and all(30 <= int(re.search(r"… (\d+)s$", t).group(1)) < 60 for t in ticks), lines
    assert lines.index(ticks[-1]) < lines.index("step 1/2  loss 1"), "no tick after the first step"
