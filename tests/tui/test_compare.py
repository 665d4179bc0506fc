"""The compare screen: reached from the runs list (space marks, c compares), and its screenshots."""

from __future__ import annotations

import pytest

from screens.compare import CompareScreen
from screens.runs import RunsScreen
from tests.recorded_runs import FAST, SLOW, two_recorded_runs
from tests.tui.conftest import CPU_RUN, GPU_RUN, make_app, run_async, wait_for
from widgets.chart import LineChart
from widgets.runs_table import MARK, RunsTable

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


def test_marking_two_runs_and_pressing_c_compares_them(runs_copy):
    app = make_app("runs", output_dir=runs_copy)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs list")
            table = app.screen.query_one(RunsTable)
            await pilot.press("c")  # nothing marked yet: a notification, no new screen
            await pilot.pause()
            assert isinstance(app.screen, RunsScreen)
            assert any("Mark at least two runs" in n.message for n in app._notifications)
            await pilot.press("space")  # the first row: the newest run, the CPU recording
            assert str(table.get_row_at(0)[0]) == MARK + CPU_RUN  # the mark is visible in the row
            await pilot.press("down", "space", "up", "space", "space")  # off and on again: still marked
            assert [p.name for p in table.marked] == [GPU_RUN, CPU_RUN]
            await pilot.press("c")
            await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.result is not None,
                           what="the comparison")
            screen = app.screen
            assert [r.name for r in screen.result.runs] == [GPU_RUN, CPU_RUN]
            loss = screen.query_one("#compare-loss", LineChart)
            assert [len(xs) for xs, _ in loss.series] == [120, 11]  # both runs' curves on one chart
            assert loss.series[0][0][-1] == 120
            await pilot.press("t")  # tokens seen on the x axis
            await pilot.pause()
            assert loss.x_label == "tokens" and loss.series[0][0][-1] == 192232
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs list again")

    run_async(go())


def test_a_run_without_events_says_so_on_the_screen(runs_copy):
    empty = runs_copy / "2026-12-03_09-00-00"
    empty.mkdir()
    (empty / "status.json").write_text('{"state": "starting"}', encoding="utf-8")
    app = make_app("runs", output_dir=runs_copy)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.app.push_screen(CompareScreen([runs_copy / GPU_RUN, empty]))
            await wait_for(pilot, lambda: app.screen.error is not None, what="the error")
            assert "has no events yet" in app.screen.error

    run_async(go())


@pytest.mark.parametrize("size", SIZES)
def test_compare_screen(snap_compare, tmp_path, size):
    root = tmp_path / "runs"
    fast, slow = two_recorded_runs(root)

    async def run_before(pilot):
        screen = CompareScreen([fast, slow])
        await pilot.app.push_screen(screen)
        await wait_for(pilot, lambda: screen.result is not None, what="the comparison")
        await pilot.pause()

    assert [fast.name, slow.name] == [FAST, SLOW]
    assert snap_compare(make_app("runs", output_dir=root), terminal_size=size, run_before=run_before)
