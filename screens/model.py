"""Step 3: the model. The catalog with sizes, and base vs specialized for your task.

Below 120 columns the list, the task question and the advice stack up, and an 80x24
terminal has 19 rows for all three: there the lead shrinks to a hint beside the heading,
the field and the task answers take one row each (the answers side by side, in short
words), the advice keeps the rows its longest text needs, and the list gets what is left
(5 rows at 80x24, every model on a taller terminal). The advice is what a newcomer most
needs to read, so it is the part that never scrolls away.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, OptionList, RadioButton, RadioSet, Static
from textual.widgets.option_list import Option

from cockpit.training.chaining import is_run_dir
from cockpit.config import BUNDLED_MODEL
from cockpit.errors import CockpitError
from screens.step import WizardStep
from cockpit.app.wizard import TASK_LABELS, TASK_SHORT_LABELS, ModelChoice

GB = 1e9
LEAD = ("Start small: a 0.5-1.5B model learns a narrow skill in minutes on one GPU, the bundled (★) "
        "135M model even on a CPU, offline. Sizes are the 16-bit weights alone.")
HINT = "★ bundled: trains on a CPU, offline · sizes: 16-bit weights"
WIDE = 120  # the breakpoint below which the narrow layout applies (HORIZONTAL_BREAKPOINTS)


def model_label(spec, bundled: bool) -> Text:
    """One catalog row: a star when bundled, id, parameters, kind, 16-bit weight size."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("★ " if bundled else "  ", "bold")
    text.append(f"{spec.id:<36} ", "bold" if bundled else "")
    text.append(f"{spec.params / 1e9:5.2f}B ")
    text.append(f"{spec.kind:<13} ", "italic" if spec.kind != "base" else "")
    text.append(f"{2 * spec.params / GB:5.1f} GB")
    return text


def run_label(run) -> Text:
    """A finished run as a starting point (``model=RUN``): its name, method and base."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("↳ ", "bold")
    text.append(f"run {run.name:<32} ", "bold")
    text.append(f"{run.method} on {str(run.model).rsplit('/', 1)[-1]}", "italic")
    return text


class ModelScreen(WizardStep[ModelChoice]):
    """Pick a catalog model (or type any id/path) and say what the training is for."""

    STEP = 2
    CSS_PATH = ["step.tcss", "model.tcss"]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE, "-wide")]

    def __init__(self, engine, previous: ModelChoice | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.choice = previous or ModelChoice()

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(classes="body"):
            yield Static(LEAD, classes="lead")
            with Horizontal(id="model-cols"):
                with Vertical(id="model-left"):
                    with Horizontal(id="model-heading"):
                        yield Static("Which model?", classes="section")
                        yield Static(HINT, id="model-hint")
                    yield OptionList(id="model-list")
                    yield Input(placeholder="…or a hub id, a model directory or a .gguf file", id="model-custom")
                with Vertical(id="model-right"):
                    yield Static("What should the training do?", classes="section")
                    with RadioSet(id="model-task"):
                        for key, label in TASK_LABELS.items():
                            yield RadioButton(label, value=key == self.choice.task, name=key)
                    yield Static(id="model-advice")

    def on_resize(self, event: events.Resize) -> None:
        narrow = event.size.width < WIDE
        labels = TASK_SHORT_LABELS if narrow else TASK_LABELS
        for button in self.query_one("#model-task", RadioSet).query(RadioButton):
            button.label = labels.get(button.name or "", button.label)
        self.query_one("#model-custom", Input).compact = narrow

    def on_mount(self) -> None:
        options = self.query_one("#model-list", OptionList)
        specs = self.engine.models()
        for spec in specs:
            options.add_option(Option(model_label(spec, spec.id == BUNDLED_MODEL), id=spec.id))
        ids = [s.id for s in specs]
        for run in self.engine.finished_runs():
            options.add_option(Option(run_label(run), id=str(run.path)))
            ids.append(str(run.path))
        if self.choice.model in ids:
            options.highlighted = ids.index(self.choice.model)
        else:
            self.query_one("#model-custom", Input).value = self.choice.model
        options.focus()
        self._advise()

    @property
    def model(self) -> str:
        custom = self.query_one("#model-custom", Input).value.strip()
        if custom:
            return custom
        options = self.query_one("#model-list", OptionList)
        if options.highlighted is None:
            return BUNDLED_MODEL
        return options.get_option_at_index(options.highlighted).id or BUNDLED_MODEL

    @property
    def task(self) -> str:
        pressed = self.query_one("#model-task", RadioSet).pressed_button
        return pressed.name if pressed is not None and pressed.name else "new"

    @on(OptionList.OptionHighlighted)
    def _highlighted(self) -> None:
        if self.query_one("#model-list", OptionList).has_focus:  # moving in the list replaces a typed model
            self.query_one("#model-custom", Input).value = ""
        self._advise()

    @on(OptionList.OptionSelected)
    def _selected(self) -> None:
        self.query_one("#model-task", RadioSet).focus()

    @on(Input.Changed, "#model-custom")
    @on(RadioSet.Changed)
    def _changed(self) -> None:
        self._advise()

    def _advise(self) -> None:
        advice_box = self.query_one("#model-advice", Static)
        if is_run_dir(self.model):
            self._advise_run()
            return
        try:
            self.engine.spec(self.model)
            advice = self.engine.model_advice(self.model, self.task)
        except CockpitError as exc:
            advice_box.update(Text(exc.one_line(), style="bold"))
            self.set_status("This model cannot be planned yet.", error=True)
            self.set_ready(False)
            return
        text = Text()
        verdict = {"keep": ("✔ A good start for this task.", "bold"),
                   "base": ("➜ A base model would serve this task better.", "bold"),
                   "ask": ("? It depends on the task.", "bold")}[advice.verdict]
        text.append(verdict[0] + "\n", verdict[1])
        for reason in advice.reasons:
            text.append(f"• {reason}\n")
        text.rstrip()  # no blank row after the last reason: at 80x24 every row is counted
        advice_box.update(text)
        self.set_ready(True)
        self.set_status(f"Next: how to train {self.model.rsplit('/', 1)[-1]}.")

    def _advise_run(self) -> None:
        try:
            self.engine.spec(self.model)
            lines = self.engine.run_advice(self.model)
        except CockpitError as exc:
            self.query_one("#model-advice", Static).update(Text(exc.one_line(), style="bold"))
            self.set_status("This run cannot be started from.", error=True)
            self.set_ready(False)
            return
        text = Text()
        text.append("➜ Continue from a finished run.\n", "bold")
        for line in lines:
            text.append(f"• {line}\n")
        text.rstrip()
        self.query_one("#model-advice", Static).update(text)
        self.set_ready(True)
        self.set_status(f"Next: how to train on top of run {Path(self.model).name}.")

    def result(self) -> ModelChoice | None:
        try:
            self.engine.spec(self.model)
        except CockpitError as exc:
            self.set_status(exc.one_line(), error=True)
            return None
        return ModelChoice(model=self.model, task=self.task)
