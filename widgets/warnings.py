"""The warnings panel: what looks wrong in a run, and what to do about it.

The trainer sends its own advice with each warning; when it has none, the panel falls
back to :data:`cockpit.training.advice.ADVICE`, the workshop checklist's words for its kind.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from cockpit.training.advice import ADVICE
from cockpit.run.follow import WarningView
from widgets import load_css

HEALTHY_TEXT = ("No warnings. A healthy run: the loss falls steadily, the gradient norm stays level "
                "(a slow rise is fine), no sudden spikes.")


def advice_for(warning: WarningView) -> str:
    """The warning's own advice, else the general advice for its kind."""
    return warning.advice or ADVICE.get(warning.kind, "")


class WarningsPanel(VerticalScroll, can_focus=True):
    """Newest warnings first, each with its advice."""

    DEFAULT_CSS = load_css("warnings.tcss")
    COMPONENT_CLASSES = {"warnings--kind", "warnings--error", "warnings--advice", "warnings--healthy",
                         "warnings--info"}

    def __init__(self, *, limit: int = 50, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.limit = limit
        self._shown: tuple = ()

    def compose(self):
        yield Static(classes="warnings-body")

    def on_mount(self) -> None:
        self.show([])

    def show(self, warnings: Sequence[WarningView], counts: dict[str, int] | None = None) -> None:
        """Display these warnings (newest first; a no-op when nothing changed)."""
        key = (len(warnings), warnings[-1] if warnings else None, tuple(sorted((counts or {}).items())))
        if key == self._shown and self._shown:
            return
        self._shown = key
        body = self.query_one(".warnings-body", Static)
        text = Text()
        problems = {kind: n for kind, n in (counts or {}).items() if kind != "info"}
        if not problems and not any(w.kind == "error" for w in warnings):
            text.append(HEALTHY_TEXT + "\n", self.get_component_rich_style("warnings--healthy"))
        elif problems:
            text.append("  ".join(f"{kind} x{n}" for kind, n in sorted(problems.items())) + "\n",
                        self.get_component_rich_style("warnings--advice"))
        for w in list(reversed(warnings))[: self.limit]:
            style = {"error": "warnings--error", "info": "warnings--info"}.get(w.kind, "warnings--kind")
            text.append(f"step {w.step} {w.kind}: ", self.get_component_rich_style(style))
            text.append(w.message + "\n")
            advice = advice_for(w)
            if advice:
                text.append(f"  → {advice}\n", self.get_component_rich_style("warnings--advice"))
        body.update(text)
