"""A vertical bar histogram in text cells, for token lengths of training examples."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget

from widgets import load_css

BLOCKS = " ▁▂▃▄▅▆▇█"
MAX_BINS = 30


def histogram_bins(values: Sequence[float], bins: int, lo: float | None = None,
                   hi: float | None = None) -> tuple[list[float], list[int]]:
    """``bins`` equal-width bins over ``[lo, hi]``: the ``bins + 1`` edges and the counts."""
    if not values or bins < 1:
        return [], []
    lo = min(values) if lo is None else lo
    hi = max(values) if hi is None else hi
    if hi <= lo:
        hi = lo + 1
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int((v - lo) / width)))] += 1
    return [lo + i * width for i in range(bins + 1)], counts


class Histogram(Widget):
    """Bars of a distribution; bins past ``limit`` (e.g. max_length) are drawn as errors."""

    DEFAULT_CSS = load_css("histogram.tcss")
    COMPONENT_CLASSES = {"histogram--bar", "histogram--over", "histogram--axis"}

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.values: list[float] = []
        self.limit: float | None = None
        self.unit = "tokens"

    def show(self, values: Sequence[float], limit: float | None = None, unit: str = "tokens") -> None:
        self.values, self.limit, self.unit = list(values), limit, unit
        self.refresh()

    def render(self) -> Text:
        width, height = self.content_size.width, self.content_size.height
        axis = self.get_component_rich_style("histogram--axis")
        if not self.values:
            return Text("no lengths measured yet", style=axis)
        rows = max(1, height - 1)
        hi = max(max(self.values), self.limit or 0) if self.limit and max(self.values) > self.limit else None
        bins = max(1, min(MAX_BINS, width // 2))
        cell_w = max(1, width // bins)
        edges, counts = histogram_bins(self.values, bins, hi=hi)
        peak = max(counts) or 1
        text = Text(no_wrap=True)
        for r in range(rows):
            level_top = (rows - r) * 8
            for i, c in enumerate(counts):
                eighths = round(c / peak * rows * 8)
                fill = max(0, min(8, eighths - (level_top - 8)))
                over = self.limit is not None and edges[i] >= self.limit
                style = self.get_component_rich_style("histogram--over" if over else "histogram--bar")
                text.append(BLOCKS[fill] * cell_w, style)
            text.append("\n")
        left = f"{edges[0]:.0f}"
        right = f"{edges[-1]:.0f} {self.unit}  (tallest bar: {peak})"
        used = bins * cell_w
        text.append(left + " " * max(1, used - len(left) - len(right)) + right, axis)
        return text
