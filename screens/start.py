"""Step 7: start. One last look, then the trainer starts in its own process."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from cockpit.config import TrainConfig
from cockpit.errors import CockpitError
from screens.step import WizardStep

AFTER = ("The trainer runs as its own background process and writes everything into its run "
         "directory. The dashboard opens next and follows it live. Press q there (or close the "
         "terminal, or lose the SSH connection): training goes on, and `llm-cockpit attach` brings "
         "the dashboard back with the whole history.")


class StartScreen(WizardStep[Path]):
    """Its answer is the new run's directory."""

    STEP = 6
    NEXT_LABEL = "Start training"

    class Started(Message):
        """``start_run`` returned (``run_dir``) or failed (``error``)."""

        def __init__(self, run_dir: Path | None, error: str | None) -> None:
            super().__init__()
            self.run_dir, self.error = run_dir, error

    def __init__(self, engine, cfg: TrainConfig) -> None:
        super().__init__()
        self.engine = engine
        self.cfg = cfg
        self.starting = False

    def compose_body(self) -> ComposeResult:
        c = self.cfg
        summary = Text()
        for key, value in (("model", c.model), ("method", c.method), ("data", c.data),
                           ("eval", c.eval_data or f"{c.eval_split:.0%} of the data held out"),
                           ("epochs", f"{c.epochs:g}" if not c.max_steps else f"{c.max_steps} steps"),
                           ("runs in", c.output_dir)):
            summary.append(f"{key:>8}  ", "bold")
            summary.append(f"{value}\n")
        with VerticalScroll(classes="body"):
            yield Static("Ready", classes="section")
            yield Static(summary)
            yield Static(AFTER, classes="lead")

    def on_mount(self) -> None:
        self.query_one("#step-next").focus()
        self.set_status("Enter starts the training.")

    def action_next(self) -> None:
        if self.starting:
            return
        self.starting = True
        self.set_ready(False)
        self.set_status("Starting the trainer…")
        self._start()

    @work(thread=True, exclusive=True, group="start")
    def _start(self) -> None:
        try:
            run_dir = self.engine.start(self.cfg)
        except CockpitError as exc:
            self.post_message(self.Started(None, exc.one_line()))
        else:
            self.post_message(self.Started(run_dir, None))

    @on(Started)
    def _started(self, message: Started) -> None:
        if message.run_dir is not None:
            self.dismiss(message.run_dir)
            return
        self.starting = False
        self.set_ready(True)
        self.set_status(message.error or "the run did not start", error=True)
