"""The sample panel: for each probe prompt, the base model's answer beside the newest one.

This is where a newcomer sees the training work: the base model invents an answer to
a question about the new language, and a few dozen steps later the adapter's answer
uses it correctly.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from cockpit.run.follow import SampleView
from widgets import load_css

EMPTY_TEXT = ("No samples yet. The base model answers a few fixed prompts (before training, or with "
              "LoRA right after the first step, adapters switched off) and the trained model answers "
              "them again as training goes on; they appear here side by side.")


class SamplesPanel(VerticalScroll, can_focus=True):
    """Scrollable list of probe prompts with the baseline and the latest answer."""

    DEFAULT_CSS = load_css("samples.tcss")
    COMPONENT_CLASSES = {"samples--prompt", "samples--baseline", "samples--latest", "samples--header",
                         "samples--waiting"}

    def __init__(self, *, max_chars: int = 600, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.max_chars = max_chars
        self._shown: tuple = ()

    def compose(self):
        yield Static(EMPTY_TEXT, classes="samples-body")

    def show(self, samples: Sequence[SampleView]) -> None:
        """Display these samples (a no-op when nothing changed since the last call)."""
        key = tuple((s.prompt, s.baseline, s.output, s.step) for s in samples)
        if key == self._shown:
            return
        self._shown = key
        body = self.query_one(".samples-body", Static)
        if not samples:
            body.update(EMPTY_TEXT)
            return
        body.update(Group(*(self._sample_table(s) for s in samples)))

    def _sample_table(self, sample: SampleView) -> Table:
        title = Text("▸ " + _clip(sample.prompt, 200), style=self.get_component_rich_style("samples--prompt"))
        table = Table(box=None, expand=True, show_edge=False, pad_edge=False, padding=(0, 1), title=title,
                      title_justify="left", header_style=self.get_component_rich_style("samples--header"))
        table.add_column("base model", ratio=1)
        table.add_column(f"after step {sample.step}" if sample.step else "during training", ratio=1)
        baseline = sample.baseline if sample.baseline is not None else "(not recorded)"
        if sample.step:
            latest = Text(_clip(sample.output, self.max_chars), style=self.get_component_rich_style("samples--latest"))
        else:  # only the answer from before training so far
            latest = Text("no answer since training began yet", style=self.get_component_rich_style("samples--waiting"))
        table.add_row(Text(_clip(baseline, self.max_chars), style=self.get_component_rich_style("samples--baseline")),
                      latest)
        table.add_row("", "")
        return table


def _clip(text: str | None, n: int) -> str:
    text = (text or "").strip()
    return text if len(text) <= n else text[: n - 1] + "…"
