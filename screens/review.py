"""Step 6: review. The resolved config as YAML, steps and time, and key=value edits."""

from __future__ import annotations

from typing import Any

from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Input, Static

from cockpit.config import TrainConfig, config_to_yaml, field_docs, parse_overrides
from cockpit.errors import CockpitError
from cockpit.planning.rules import Line, estimate_lines, rules_of_thumb
from screens.step import WizardStep
from cockpit.app.wizard import DataChoice, MethodChoice, ModelChoice


def lines_text(lines: list[Line]) -> Text:
    """Review lines as rich text: the mark and the lead in bold."""
    text = Text()
    for i, line in enumerate(lines):
        if i:
            text.append("\n")
        if line.mark:
            text.append(f"{line.mark} ", "bold")
        if line.lead:
            text.append(line.lead, "bold")
        text.append(line.text)
    return text


class ReviewScreen(WizardStep[TrainConfig]):
    """Everything the run will use; any key can be changed before it starts."""

    STEP = 5
    CSS_PATH = ["step.tcss", "review.tcss"]

    def __init__(self, engine, model: ModelChoice, method: MethodChoice, data: DataChoice,
                 mean_tokens: float | None, overrides: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.answers = (model, method, data)
        self.mean_tokens = mean_tokens
        self.overrides: dict[str, Any] = dict(overrides or {})
        self.cfg: TrainConfig | None = None

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(classes="body"):
            yield Static(id="review-estimate")
            yield Input(placeholder="change a setting: key=value ... (e.g. epochs=3 lr=5e-4), enter applies",
                        id="review-edit")
            yield Static(id="review-help", classes="muted")
            yield Static("Rules of thumb", classes="section")
            yield Static(id="review-hints")
            yield Static("The config (saved in the run as config_used.yaml)", classes="section")
            yield Static(id="review-yaml")

    def on_mount(self) -> None:
        self._rebuild()
        self.query_one("#review-edit", Input).focus()

    def _rebuild(self, extra: dict[str, Any] | None = None) -> bool:
        overrides = {**self.overrides, **(extra or {})}
        try:
            cfg = self.engine.build_config(*self.answers, overrides=overrides)
        except CockpitError as exc:
            self.set_status(exc.one_line(), error=True)
            return False
        self.cfg, self.overrides = cfg, overrides
        est = self.engine.estimate_run(cfg, self.answers[2].examples, self.mean_tokens)
        self.query_one("#review-estimate", Static).update(lines_text(estimate_lines(cfg, est)))
        try:
            params = self.engine.spec(cfg.model).params
        except CockpitError:
            params = None
        self.query_one("#review-hints", Static).update(lines_text(rules_of_thumb(cfg, params)))
        self.query_one("#review-yaml", Static).update(
            Syntax(config_to_yaml(cfg), "yaml", theme="ansi_dark" if self.app.current_theme.dark else "ansi_light",
                   background_color="default", word_wrap=True))
        changed = ", ".join(f"{k}={v}" for k, v in overrides.items() if k != "output_dir")
        self.set_status(f"Your changes: {changed}" if changed else "Next: start the training.")
        return True

    @on(Input.Changed, "#review-edit")
    def _explain(self, event: Input.Changed) -> None:
        """Show what the key being typed means (the config's own documentation)."""
        key = event.value.strip().split("=", 1)[0].split()[-1] if event.value.strip() else ""
        doc = field_docs().get(key, "")
        self.query_one("#review-help", Static).update(f"{key}: {doc}" if doc else "")

    @on(Input.Submitted, "#review-edit")
    def _apply(self, event: Input.Submitted) -> None:
        pairs = event.value.split()
        if not pairs:
            return
        try:
            extra = parse_overrides(pairs)
        except CockpitError as exc:
            self.set_status(exc.one_line(), error=True)
            return
        if self._rebuild(extra):
            event.input.value = ""

    def result(self) -> TrainConfig | None:
        return self.cfg
