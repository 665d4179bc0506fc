"""Bars that compare amounts with a capacity: a memory breakdown, a device's memory, a gauge.

:class:`MemoryBar` draws stacked segments (weights, optimizer states, activations, ...)
against the memory a device has, with a tick where the capacity ends when the total
overflows it. :func:`gauge` is the one-line bar used for utilisation and temperature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from cockpit.run.follow import fmt_bytes
from widgets import load_css

SEGMENT_CLASSES = 6


@dataclass(frozen=True)
class Segment:
    """One part of a stacked bar: a label and its size in bytes."""

    label: str
    size: float


def bar_cells(segments: Sequence[float], capacity: float, width: int) -> tuple[list[int], int | None]:
    """How many cells each segment gets in a bar ``width`` cells wide, and the cell where
    the capacity ends (``None`` when everything fits and the bar is scaled to capacity).

    When the total exceeds the capacity, the bar is scaled to the total instead, so the
    overflow is visible past the capacity tick.
    """
    total = sum(max(0.0, s) for s in segments)
    scale_to = max(capacity, total) if capacity > 0 else total
    if width <= 0 or scale_to <= 0:
        return [0 for _ in segments], None
    cells, acc, used = [], 0.0, 0
    for size in segments:
        acc += max(0.0, size)
        end = round(acc / scale_to * width)
        cells.append(max(0, end - used))
        used = end
    tick = round(capacity / scale_to * width) if 0 < capacity < total else None
    return cells, tick


def gauge(fraction: float | None, width: int, style: Style | str = "", empty_style: Style | str = "") -> Text:
    """``███████░░░`` for a share 0..1 (an unknown share is drawn empty)."""
    fraction = 0.0 if fraction is None else max(0.0, min(1.0, fraction))
    full = round(fraction * width)
    return Text.assemble(("█" * full, style), ("░" * (width - full), empty_style))


class MemoryBar(Widget):
    """A stacked memory bar against a capacity, with its legend and a one-line verdict."""

    DEFAULT_CSS = load_css("meters.tcss")
    COMPONENT_CLASSES = {f"memorybar--seg{i}" for i in range(SEGMENT_CLASSES)} | {
        "memorybar--free", "memorybar--over", "memorybar--label"}

    def __init__(self, *, legend: bool = True, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.legend = legend
        self.segments: list[Segment] = []
        self.capacity = 0.0
        self.caption = ""

    def update_bar(self, segments: Sequence[Segment], capacity: float, caption: str = "") -> None:
        """Show these segments against ``capacity`` bytes (0: no capacity known)."""
        self.segments = list(segments)
        self.capacity = float(capacity or 0)
        self.caption = caption
        self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:  # noqa: ANN001 - Textual's signature
        return 1 + (1 if self.caption else 0) + (self._legend_lines(width) if self.legend else 0)

    def _legend_lines(self, width: int) -> int:
        return len(self._legend(width).wrap(self.app.console, max(1, width))) if self.segments else 0

    def render(self) -> Text:
        width = max(1, self.content_size.width)
        total = sum(s.size for s in self.segments)
        cells, tick = bar_cells([s.size for s in self.segments], self.capacity, width)
        bar = Text(no_wrap=True)
        for i, n in enumerate(cells):
            bar.append("█" * n, self._seg_style(i))
        rest = width - bar.cell_len
        if rest > 0:
            bar.append("░" * rest, self.get_component_rich_style("memorybar--free"))
        if tick is not None and tick < width:
            # the capacity tick drawn over the bar: what lies right of it does not fit
            bar = bar[:tick] + Text("┃", self.get_component_rich_style("memorybar--over")) + bar[tick + 1:]
        text = bar
        if self.caption:
            style = self.get_component_rich_style("memorybar--over" if self.capacity and total > self.capacity
                                                  else "memorybar--label")
            text = text + Text("\n" + self.caption, style)
        if self.legend and self.segments:
            text = text + Text("\n") + self._legend(width)
        return text

    def _legend(self, width: int) -> Text:
        legend = Text()
        for i, seg in enumerate(self.segments):
            if i:
                legend.append("  ")
            legend.append("■ ", self._seg_style(i))
            legend.append(f"{seg.label} {fmt_bytes(seg.size)}")
        return legend

    def _seg_style(self, index: int) -> Style:
        return self.get_component_rich_style(f"memorybar--seg{index % SEGMENT_CLASSES}")
