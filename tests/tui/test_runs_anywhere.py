"""The cockpit started from any directory lists the runs of every remembered runs directory."""

from __future__ import annotations

from textual.widgets import DataTable, OptionList

from cockpit.run.registry import register_root
from screens.runs import RunsScreen
from screens.welcome import WelcomeScreen
from tests.tui.conftest import CPU_RUN, GPU_RUN, make_app, run_async, wait_for


def test_welcome_and_runs_list_show_remembered_runs_from_another_directory(runs_copy, tmp_path, monkeypatch):
    register_root(runs_copy)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(home)  # no outputs/runs here: only the registry knows where the runs are
    app = make_app("wizard", output_dir=None)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, WelcomeScreen), what="the welcome screen")
            options = app.screen.query_one("#welcome-options", OptionList)
            ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
            assert f"run:{(runs_copy / CPU_RUN).resolve()}" in ids and f"run:{(runs_copy / GPU_RUN).resolve()}" in ids
            assert f"2 run(s) in {runs_copy.resolve()}" in str(app.screen.query_one("#step-status").render())
            app.open_runs()
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs list")
            table = app.screen.query_one(DataTable)
            assert [table.get_row_at(i)[0] for i in range(table.row_count)] == [CPU_RUN, GPU_RUN]

    run_async(go())


def test_an_explicit_runs_directory_shows_that_directory_only(runs_copy, tmp_path, monkeypatch):
    register_root(runs_copy)
    monkeypatch.chdir(tmp_path)
    app = make_app("runs", output_dir=tmp_path / "empty")

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs list")
            assert app.screen.query_one(DataTable).row_count == 0

    run_async(go())
