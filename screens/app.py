"""The cockpit's Textual App: the wizard, the dashboard and the runs list.

Start-up stays light on purpose (torch, transformers and peft are never imported on
this path: the first screen paints in a fraction of a second, even over SSH). Engine
work that needs them runs in worker threads or in the trainer's own process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.widgets import Input, TextArea

from cockpit.app import runs as services

StartMode = Literal["wizard", "dashboard", "runs", "chat"]


class CockpitApp(App[None]):
    """``llm-cockpit``'s full-screen UI.

    ``start`` picks the first screen: the wizard (``llm-cockpit``), one run's dashboard
    (``attach``) or the runs list. ``now`` returns the current unix time; tests inject
    a fixed clock so ages on screen are reproducible. ``engine`` is the wizard's link to
    the engine (:class:`cockpit.app.wizard.WizardEngine`); tests pass one with fixed
    hardware so snapshots match on any machine. ``output_dir`` (``--output-dir``) limits the
    runs shown to that runs directory and puts new runs there; None shows the runs of every
    runs directory llm-cockpit knows (new runs go to ``outputs/runs`` here).
    """

    TITLE = "llm-cockpit"
    CSS_PATH = "app.tcss"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", show=False, priority=True)]

    def __init__(self, *, output_dir: str | Path | None = None, start: StartMode = "wizard",
                 run_dir: str | Path | None = None, now: Callable[[], float] = time.time,
                 engine=None, interval: float = 0.25, light: bool = False, cursor_blink: bool = True,
                 chat: dict | None = None) -> None:
        super().__init__()
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.start_mode = start
        self.run_dir = Path(run_dir) if run_dir else None
        self.now = now
        self.interval = interval
        self.cursor_blink = cursor_blink
        self.detached_from: Path | None = None
        self._engine = engine
        self.chat_options = chat or {}  # start="chat": ChatScreen's target and options (llm-cockpit chat)
        if light:
            self.theme = "textual-light"

    @property
    def engine(self):
        """The wizard's engine link, created on first use (it imports nothing heavy)."""
        if self._engine is None:
            from cockpit.app.wizard import WizardEngine

            self._engine = WizardEngine(output_dir=self.output_dir)
        return self._engine

    def on_mount(self) -> None:
        if self.start_mode == "dashboard" and self.run_dir is not None:
            self.open_run(self.run_dir)
        elif self.start_mode == "chat":
            self.open_chat(**self.chat_options)
        elif self.start_mode == "runs":
            from screens.runs import RunsScreen

            self.push_screen(RunsScreen(self.output_dir))
        else:
            self.start_wizard()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # snapshot tests turn the blinking cursor off, so every screenshot is the same
        if isinstance(event.widget, (Input, TextArea)) and not self.cursor_blink:
            event.widget.cursor_blink = False

    # -- navigation ------------------------------------------------------------------
    def _show(self, screen) -> None:
        """Replace the current main screen (the stack stays one deep, plus modals)."""
        if len(self.screen_stack) > 1:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def start_wizard(self) -> None:
        """Walk through the wizard; its last step starts a run and opens the dashboard."""
        from screens.wizard import WizardFlow

        WizardFlow(self).begin()

    def open_run(self, run_dir: str | Path) -> None:
        """Show the dashboard of a run (live or finished)."""
        from screens.dashboard import DashboardScreen

        self.run_dir = Path(run_dir)
        self._show(DashboardScreen(self.run_dir, interval=self.interval))

    def open_chat(self, target=None, **options) -> None:
        """Talk to a run's model (or a model) on the chat screen, over the current screen."""
        from screens.chat import ChatScreen

        self.push_screen(ChatScreen(target, output_dir=self.output_dir, **options))

    def open_runs(self) -> None:
        from screens.runs import RunsScreen

        self._show(RunsScreen(self.output_dir))

    def detach(self, run_dir: Path, state: str) -> None:
        """Leave the UI; the trainer is its own process and is not touched."""
        self.detached_from = run_dir
        spec = services.run_spec(run_dir)
        if state in ("running", "starting"):
            message = (f"Detached from {run_dir.name}: training continues in the background.\n"
                       f"Follow it again with:  llm-cockpit attach {spec}")
        else:
            message = f"Run {run_dir.name} is {state}. Open it again with:  llm-cockpit attach {spec}"
        self.exit(message=message)
