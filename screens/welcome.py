"""Step 1: welcome. Start a new run, or go back to one that is running or finished."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from cockpit.run.follow import fmt_age
from cockpit.run.rundir import RunInfo
from cockpit.app import runs as services
from screens.step import WizardStep

INTRO = ("llm-cockpit fine-tunes a language model on your own examples, on this machine. "
         "The next steps look at the hardware, help you pick a model and a training method "
         "that fits its memory, check your data, and start the training in the background. "
         "You can close this window at any time: training goes on, and you come back to it here.")
RECENT = 6


@dataclass(frozen=True)
class WelcomeChoice:
    """What to do: ``new`` (the wizard), ``open`` a run's dashboard, or see all ``runs``."""

    action: str
    run_dir: Path | None = None


class WelcomeScreen(WizardStep[WelcomeChoice]):
    """The first screen of ``llm-cockpit``."""

    STEP = 0
    NEXT_LABEL = "Continue"

    def __init__(self, output_dir: Path | None) -> None:
        super().__init__()
        self.output_dir = Path(output_dir) if output_dir is not None else None  # None: every known runs directory
        self.runs: list[RunInfo] = []

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(classes="body"):
            yield Static("Welcome to llm-cockpit", classes="section")
            yield Static(INTRO, classes="lead")
            yield OptionList(id="welcome-options")

    def on_mount(self) -> None:
        self.runs = services.list_runs(self.output_dir)
        options = self.query_one("#welcome-options", OptionList)
        options.add_option(Option(Text("▶ Start a new training run (the wizard)", style="bold"), id="new"))
        now = self.app.now()
        for info in self.runs[:RECENT]:
            verb = "Watch" if info.state in ("running", "starting") else "Open"
            label = Text(f"  {verb} {info.name} · ", no_wrap=True, overflow="ellipsis")
            label.append(f"{info.state}", "bold" if info.state == "running" else "")
            label.append(f" · {info.method} · {fmt_age(info.started, now)}")
            options.add_option(Option(label, id=f"run:{info.path}"))
        if len(self.runs) > RECENT:
            options.add_option(Option(f"  All {len(self.runs)} runs…", id="runs"))
        elif self.runs:
            options.add_option(Option("  The runs list…", id="runs"))
        options.highlighted = 0
        options.focus()
        place = services.runs_place(self.output_dir)
        self.set_status(f"{len(self.runs)} run(s) in {place}" if self.runs else f"No runs yet in {place}")

    @on(OptionList.OptionSelected)
    def _selected(self) -> None:
        self.action_next()

    def result(self) -> WelcomeChoice | None:
        options = self.query_one("#welcome-options", OptionList)
        if options.highlighted is None:
            return None
        option_id = options.get_option_at_index(options.highlighted).id or "new"
        if option_id.startswith("run:"):
            return WelcomeChoice("open", Path(option_id[4:]))
        return WelcomeChoice(option_id)
