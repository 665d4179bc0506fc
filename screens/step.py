"""The frame every wizard step shares: where you are, the step's body, Back and Next.

A step is a ``Screen[T]`` that dismisses with its typed answer (Next) or with ``None``
(Back); :class:`screens.wizard.WizardFlow` chains them. Keys: ``ctrl+n`` or the Next
button goes on, ``escape`` goes back; everything in between is reachable with tab.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, Footer, Static

T = TypeVar("T")
STEP_NAMES = ("Welcome", "Hardware", "Model", "Method", "Data", "Review", "Start")


def step_header(index: int) -> Text:
    """``Step 3/7  Model   ● ● ◉ ○ ○ ○ ○`` with the past steps filled."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f" Step {index + 1}/{len(STEP_NAMES)}  ", "bold")
    text.append(STEP_NAMES[index], "bold reverse")
    text.append("   ")
    for i, name in enumerate(STEP_NAMES):
        text.append("◉" if i == index else "●" if i < index else "○")
        text.append(" " + name + "  " if i == index else " ")
    return text


class WizardStep(Screen[T], Generic[T]):
    """Base of the wizard's steps; subclasses set ``STEP``, write :meth:`compose_body`
    and :meth:`result` (the answer, or None while the step is not complete)."""

    CSS_PATH = "step.tcss"
    STEP = 0
    NEXT_LABEL = "Next"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+n", "next", "Next"),
        Binding("question_mark", "help", "Help", key_display="?", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Static(step_header(self.STEP), id="step-header")
        yield from self.compose_body()
        with Horizontal(id="step-nav"):
            yield Static(id="step-status")
            yield Button("Back (esc)", id="step-back")
            yield Button(f"{self.NEXT_LABEL} (ctrl+n)", id="step-next", variant="primary")
        yield Footer()

    def compose_body(self) -> ComposeResult:  # pragma: no cover - every step overrides it
        yield from ()

    def result(self) -> T | None:  # pragma: no cover - every step overrides it
        return None

    def set_status(self, message: str, error: bool = False) -> None:
        """One line beside the buttons: why Next is not possible yet, or what happens next."""
        status = self.query_one("#step-status", Static)
        status.update(message)
        status.set_class(error, "-error")

    def set_ready(self, ready: bool) -> None:
        self.query_one("#step-next", Button).disabled = not ready

    @on(Button.Pressed, "#step-back")
    def _back_pressed(self) -> None:
        self.action_back()

    @on(Button.Pressed, "#step-next")
    def _next_pressed(self) -> None:
        self.action_next()

    def action_back(self) -> None:
        self.dismiss(None)

    def action_next(self) -> None:
        if self.query_one("#step-next", Button).disabled:
            return
        answer = self.result()
        if answer is not None:
            self.dismiss(answer)

    def action_help(self) -> None:
        from screens.help import HelpScreen

        self.app.push_screen(HelpScreen())
