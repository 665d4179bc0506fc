"""The drawing arithmetic of the widgets: braille plots, bars, histograms."""

from __future__ import annotations

from widgets.chart import BRAILLE_BASE, data_bounds, plot_braille, robust_cap
from widgets.histogram import histogram_bins
from widgets.meters import bar_cells, gauge


def dots(grid):
    """The plotted points back as a set of (x, y) dot coordinates."""
    bits = {0x01: (0, 0), 0x02: (0, 1), 0x04: (0, 2), 0x40: (0, 3), 0x08: (1, 0), 0x10: (1, 1), 0x20: (1, 2),
            0x80: (1, 3)}
    found = set()
    for r, row in enumerate(grid):
        for c, (mask, _) in enumerate(row):
            for bit, (dx, dy) in bits.items():
                if mask & bit:
                    found.add((c * 2 + dx, r * 4 + dy))
    return found


def test_a_falling_line_goes_from_top_left_to_bottom_right():
    xs, ys = list(range(10)), [9 - i for i in range(10)]
    grid = plot_braille([(xs, ys)], width=5, height=2, bounds=data_bounds([(xs, ys)]))
    points = dots(grid)
    assert (0, 0) in points and (9, 7) in points
    # connected: every dot column between the ends has a dot
    assert {x for x, _ in points} == set(range(10))
    assert all(index == 0 for row in grid for mask, index in row if mask)


def test_steep_segments_are_filled_vertically():
    xs, ys = [0, 1], [0, 100]
    points = dots(plot_braille([(xs, ys)], width=1, height=4, bounds=(0, 1, 0, 100)))
    assert {y for x, y in points if x == 1} == set(range(0, 16))  # a vertical run, no gaps


def test_later_series_owns_shared_cells_and_empty_cells_stay_blank():
    a = ([0, 1, 2, 3], [1, 1, 1, 1])
    b = ([0, 1, 2, 3], [1, 1, 1, 1])
    grid = plot_braille([a, b], width=2, height=1, bounds=(0, 3, 0, 2))
    assert {index for row in grid for mask, index in row if mask} == {1}
    assert chr(BRAILLE_BASE) == "\u2800"


def test_bounds_widen_flat_lines_and_cap_outliers():
    assert data_bounds([([1, 2], [0.0, 0.0])]) == (1, 2, 0.0, 1.0)
    assert data_bounds([]) is None
    spiky = [1.0 + 0.01 * i for i in range(30)] + [118.0]
    cap = robust_cap(spiky)
    assert cap is not None and 3.0 < cap < 4.5
    assert robust_cap([1.0 + 0.01 * i for i in range(30)]) is None
    assert data_bounds([(list(range(31)), spiky)], robust=True)[3] == cap


def test_bar_cells_scale_to_capacity_and_show_overflow():
    cells, tick = bar_cells([25, 25], capacity=100, width=20)
    assert cells == [5, 5] and tick is None
    cells, tick = bar_cells([100, 100], capacity=100, width=20)
    assert sum(cells) == 20 and tick == 10  # twice the capacity: the tick sits in the middle
    assert gauge(0.5, 4).plain == "██░░" and gauge(None, 3).plain == "░░░"


def test_histogram_bins_count_every_value():
    edges, counts = histogram_bins([1, 2, 2, 3, 10], bins=3)
    assert sum(counts) == 5 and counts[0] == 4 and len(edges) == 4
    assert histogram_bins([], 4) == ([], [])


def test_a_queued_snapshot_is_replaced_by_a_newer_one(tmp_path):
    """Snapshots posted faster than the screen handles them: it draws the newest once, and
    the count of new events still adds up (Textual's Message.can_replace)."""
    import asyncio

    from textual import on
    from textual.app import App

    from cockpit.run.follow import RunState
    from widgets.watcher import RunWatcher

    class Probe(App):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[int, int]] = []

        def compose(self):
            yield RunWatcher(tmp_path, interval=60)

        @on(RunWatcher.Updated)
        def _updated(self, message: RunWatcher.Updated) -> None:
            self.seen.append((message.state.events_seen, message.new_events))

    async def go():
        app = Probe()
        async with app.run_test() as pilot:
            await pilot.pause()
            app.seen.clear()  # the watcher's own first look at the empty directory
            watcher = app.query_one(RunWatcher)
            for n in range(1, 6):  # queued before the watcher's pump runs again
                state = RunState(name=tmp_path.name)
                state.events_seen = n
                watcher.post_message(RunWatcher.Updated(state, 2))
            await pilot.pause()
            assert app.seen == [(5, 10)]

    asyncio.run(go())
