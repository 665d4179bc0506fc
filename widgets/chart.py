"""A small line chart drawn with braille dots, for metrics over training steps.

Each terminal cell holds a 2x4 grid of braille dots, so a 40x6 cell chart has 80x24
points: enough to see a loss curve fall, a grad-norm spike or the learning-rate
schedule over SSH, with no graphics protocol and no extra dependency.

:func:`plot_braille` is the pure part (points in, rows of dot masks out) and is tested
on its own; :class:`LineChart` lays out the title, the legend and the axes around it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from cockpit.run.follow import fmt_num
from widgets import load_css

# bit of each dot, indexed [x][y] inside one cell (x 0..1 left to right, y 0..3 top down)
_DOT_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
BRAILLE_BASE = 0x2800

Points = tuple[Sequence[float], Sequence[float]]


def data_bounds(series: Sequence[Points], robust: bool = False) -> tuple[float, float, float, float] | None:
    """``(x0, x1, y0, y1)`` over all points, ranges widened so neither is empty.

    ``robust`` caps the top at three times the 95th percentile when a few outliers lie
    far above it (a single gradient spike would otherwise flatten the whole curve); the
    outliers are then drawn on the top row.
    """
    xs = [x for s in series for x in s[0]]
    ys = [y for s in series for y in s[1]]
    if not xs:
        return None
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    cap = robust_cap(ys) if robust else None
    if cap is not None:
        y1 = cap
    if x1 <= x0:
        x1 = x0 + 1
    if y1 <= y0:  # a flat line: give it some room, without going below 0 for positive data
        pad = abs(y0) * 0.05 or 1.0
        y0, y1 = (y0 - pad if y0 - pad >= 0 or y0 < 0 else 0.0), y1 + pad
    return x0, x1, y0, y1


def robust_cap(ys: Sequence[float]) -> float | None:
    """Three times the 95th percentile, when the maximum lies above that; else None."""
    if len(ys) < 20:
        return None
    ordered = sorted(ys)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return 3 * p95 if p95 > ordered[0] and ordered[-1] > 3 * p95 else None


def plot_braille(series: Sequence[Points], width: int, height: int,
                 bounds: tuple[float, float, float, float]) -> list[list[tuple[int, int]]]:
    """Rasterise line series into ``height`` rows of ``width`` cells.

    Each cell is ``(dot_mask, series_index)``; where two series cross, the later one
    owns the cell's colour. Points are bucketed per dot column (mean of the bucket)
    and consecutive columns are joined by vertical runs, so a curve stays connected.
    """
    grid = [[(0, -1) for _ in range(width)] for _ in range(height)]
    if width <= 0 or height <= 0:
        return grid
    x0, x1, y0, y1 = bounds
    dots_w, dots_h = width * 2, height * 4
    for index, (xs, ys) in enumerate(series):
        columns: dict[int, list[float]] = {}
        for x, y in zip(xs, ys, strict=False):
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            col = round((x - x0) / (x1 - x0) * (dots_w - 1))
            columns.setdefault(min(max(col, 0), dots_w - 1), []).append(y)
        prev: tuple[int, int] | None = None
        for col in sorted(columns):
            mean = sum(columns[col]) / len(columns[col])
            row = round((y1 - mean) / (y1 - y0) * (dots_h - 1))
            row = min(max(row, 0), dots_h - 1)
            if prev is not None and col - prev[0] > 1:
                _line(grid, prev, (col, row), index)
            elif prev is not None:
                _vertical(grid, col, prev[1], row, index)
            else:
                _dot(grid, col, row, index)
            prev = (col, row)
    return grid


def _dot(grid: list[list[tuple[int, int]]], x: int, y: int, index: int) -> None:
    cell_x, cell_y = divmod(x, 2)[0], divmod(y, 4)[0]
    mask, _ = grid[cell_y][cell_x]
    grid[cell_y][cell_x] = (mask | _DOT_BITS[x % 2][y % 4], index)


def _vertical(grid: list[list[tuple[int, int]]], x: int, y_from: int, y_to: int, index: int) -> None:
    step = 1 if y_to >= y_from else -1
    for y in range(y_from, y_to + step, step):
        _dot(grid, x, y, index)


def _line(grid: list[list[tuple[int, int]]], a: tuple[int, int], b: tuple[int, int], index: int) -> None:
    (xa, ya), (xb, yb) = a, b
    prev_y = ya
    for x in range(xa + 1, xb + 1):
        y = round(ya + (yb - ya) * (x - xa) / (xb - xa))
        # fill the vertical gap so steep segments do not break into dots
        _vertical(grid, x, prev_y + (1 if y > prev_y else -1 if y < prev_y else 0), y, index)
        prev_y = y


class LineChart(Widget):
    """A titled braille line chart of one or more series over steps.

    Feed it with :meth:`set_series`; it redraws on the next refresh only. Colours come
    from the theme (component classes), so the chart reads on dark and light terminals.
    """

    DEFAULT_CSS = load_css("chart.tcss")
    COMPONENT_CLASSES = {"linechart--title", "linechart--axis", "linechart--s0", "linechart--s1",
                         "linechart--s2", "linechart--s3", "linechart--s4", "linechart--empty"}
    SERIES_STYLES = 5  # series past the fifth take the fifth's colour

    title: reactive[str] = reactive("", layout=False)

    def __init__(self, title: str, labels: Sequence[str] = ("",), *, empty_text: str = "waiting for data",
                 robust: bool = False, x_label: str = "step", name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.title = title
        self.x_label = x_label  # what the x axis counts (its right end reads "<x_label> <last x>")
        self.robust = robust
        self.labels = list(labels)
        self.empty_text = empty_text
        self._series: list[Points] = [([], []) for _ in self.labels]
        self._key: tuple = ()
        self._strips: list[Strip] | None = None

    def set_series(self, *series: Points) -> None:
        """Replace the plotted data, one ``(steps, values)`` pair per label (no redraw when
        nothing new arrived)."""
        key = tuple((len(xs), xs[-1] if len(xs) else None, ys[-1] if len(ys) else None) for xs, ys in series)
        if key == self._key:
            return
        self._key = key
        self._series = list(series)
        self.refresh()

    def relabel(self, title: str, labels: Sequence[str]) -> None:
        """Chart something else (a preference run's reward margin in place of the learning rate)."""
        if title == self.title and list(labels) == self.labels:
            return
        self.title, self.labels = title, list(labels)
        self._series, self._key = [([], []) for _ in self.labels], ()
        self.refresh()

    @property
    def series(self) -> list[Points]:
        return self._series

    def on_resize(self) -> None:
        self._strips = None

    def refresh(self, *regions, **kwargs):  # noqa: ANN201 - Textual's signature
        # any reason to redraw (new data, theme, size) invalidates the drawn rows
        self._strips = None
        return super().refresh(*regions, **kwargs)

    def render_line(self, y: int) -> Strip:
        """Rows come from a cache rebuilt only when data, size or theme change (the
        line API skips Textual's text layout, which matters at 4 redraws a second)."""
        width = self.content_size.width
        if self._strips is None:
            console, base = self.app.console, self.rich_style  # base: the widget's colours and background
            self._strips = [Strip(line.render(console), line.cell_len).extend_cell_length(width).crop(0, width)
                            .apply_style(base) for line in self.lines(width, self.content_size.height)]
        return self._strips[y] if y < len(self._strips) else Strip.blank(width, self.rich_style)

    def lines(self, width: int, height: int) -> list[Text]:
        """The chart as text rows: header, plot with its y labels, x axis."""
        rows = [self._header(width)]
        bounds = data_bounds([s for s in self._series if len(s[0])], self.robust)
        if bounds is None or height < 3:
            rows.append(Text(self.empty_text.center(width)[:width], self.get_component_rich_style("linechart--empty")))
            return rows
        x0, x1, y0, y1 = bounds
        peak = max((max(s[1]) for s in self._series if len(s[1])), default=y1)
        top, bottom = fmt_num(y1, 3) + ("↑" if peak > y1 else ""), fmt_num(y0, 3)
        axis_w = max(len(top), len(bottom)) + 1
        plot_w, plot_h = max(1, width - axis_w), max(1, height - 2)
        grid = plot_braille(self._series, plot_w, plot_h, bounds)
        axis_style = self.get_component_rich_style("linechart--axis")
        styles = [self._series_style(i) for i in range(len(self._series))]
        for r, row in enumerate(grid):
            label = top if r == 0 else bottom if r == plot_h - 1 else ""
            line = Text(label.rjust(axis_w - 1) + "│", axis_style, no_wrap=True)
            # one span per run of cells of the same series: a few spans per row, not one per cell
            run_index, chars = -2, []
            for mask, index in row:
                index = index if mask else -1
                if index != run_index and chars:
                    line.append("".join(chars), styles[run_index] if run_index >= 0 else None)
                    chars = []
                run_index = index
                chars.append(chr(BRAILLE_BASE + mask) if mask else " ")
            if chars:
                line.append("".join(chars), styles[run_index] if run_index >= 0 else None)
            rows.append(line)
        left, right = f"{x0:.0f}", f"{self.x_label} {x1:.0f}"
        gap = max(1, plot_w - len(left) - len(right))
        rows.append(Text(" " * axis_w + left + " " * gap + right, axis_style, no_wrap=True))
        return rows

    def _series_style(self, index: int) -> Style:
        return self.get_component_rich_style(f"linechart--s{min(index, self.SERIES_STYLES - 1)}")

    def _header(self, width: int) -> Text:
        text = Text(self.title, style=self.get_component_rich_style("linechart--title"), no_wrap=True)
        for i, label in enumerate(self.labels):
            xs, ys = self._series[i] if i < len(self._series) else ([], [])
            if not label and len(self.labels) == 1:
                if len(ys):
                    text.append(f"  {fmt_num(ys[-1], 3)}")
                    if self.robust and robust_cap(ys) is not None:
                        text.append(f"  max {fmt_num(max(ys), 3)}")
                continue
            text.append("  ━ ", self._series_style(i))
            text.append(label + (f" {fmt_num(ys[-1], 3)}" if len(ys) else ""))
        text.truncate(width)
        return text
