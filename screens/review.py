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
from cockpit.run.follow import fmt_duration
from screens.step import WizardStep
from screens.wizard_engine import DataChoice, MethodChoice, ModelChoice, RunEstimate


def estimate_text(cfg: TrainConfig, est: RunEstimate) -> Text:
    """Steps with their arithmetic, tokens, and the rough time with its basis."""
    text = Text()
    text.append(f"{est.steps} optimizer steps", "bold")
    if cfg.max_steps:
        text.append(f" (max_steps={cfg.max_steps}; {est.train_examples} training examples, "
                    f"batch {cfg.batch_size} x accumulation {cfg.grad_accum})\n")
    else:
        epochs = f"{cfg.epochs:g} epoch{'s' if cfg.epochs != 1 else ''}"
        text.append(f": {est.train_examples} training examples / (batch {cfg.batch_size} x accumulation "
                    f"{cfg.grad_accum}) x {epochs}\n")
    if est.seconds is not None:
        text.append(f"roughly {fmt_duration(est.seconds)}", "bold")
        text.append(f" for ~{est.tokens:,} tokens ({est.basis}; the dashboard shows the real speed "
                    "after a few steps)\n")
    text.append(f"checkpoint every {cfg.save_steps} steps, eval "
                + (f"every {cfg.eval_steps} steps" if cfg.eval_steps else "at the end")
                + ", sample answers " + (f"every {cfg.sample_every} steps" if cfg.sample_every else
                                         "at the start and the end"))
    return text


def rules_of_thumb(cfg: TrainConfig, params: int | None) -> Text:
    """The usual ranges for this model's size, with a mark where the config leaves them."""
    text = Text()
    if cfg.is_preference:
        # preference tuning moves a trained model a little: far lower rates than SFT
        low, high = (5e-5, 2e-4) if cfg.uses_lora else (1e-7, 1e-6)
        text.append("✔ " if low <= cfg.lr <= high else "! ", "bold")
        text.append(f"learning rate {cfg.lr:g}: {cfg.stage.upper()} usually takes {low:g}..{high:g} with "
                    f"{'LoRA' if cfg.uses_lora else 'every weight trained (the paper: 5e-7)'}\n")
        text.append("✔ " if 0.01 <= cfg.beta <= 0.5 else "! ", "bold")
        text.append(f"beta {cfg.beta:g}: how far the model may move from its reference (0.1 is usual)\n")
    elif params:
        low, high = (5e-4, 1e-3) if params < 1e9 else (1e-4, 5e-4) if params <= 7.5e9 else (5e-5, 2e-4)
        inside = low <= cfg.lr <= high or (cfg.uses_lora and cfg.lr == 2e-4)
        text.append("✔ " if inside else "! ", "bold")
        text.append(f"learning rate {cfg.lr:g}: models of {params / 1e9:.1f}B usually take {low:g}..{high:g}"
                    + (" (LoRA often 2e-4)" if cfg.uses_lora else "") + "\n")
    warm = "✔ " if 0.03 <= cfg.warmup_ratio <= 0.1 else "! "
    text.append(warm, "bold")
    text.append(f"warmup {cfg.warmup_ratio:.0%} of the steps (3-10% is usual), then {cfg.lr_scheduler} decay\n")
    text.append("✔ " if 0.5 <= cfg.max_grad_norm <= 1.0 else "! ", "bold")
    text.append(f"gradient clipping at {cfg.max_grad_norm:g} (0.5-1.0 keeps single bad batches harmless)\n")
    text.append("• ", "bold")
    text.append(f"effective batch {cfg.batch_size * cfg.grad_accum} = batch {cfg.batch_size} x accumulation "
                f"{cfg.grad_accum} (x the number of GPUs)")
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
        self.query_one("#review-estimate", Static).update(estimate_text(cfg, est))
        try:
            params = self.engine.spec(cfg.model).params
        except CockpitError:
            params = None
        self.query_one("#review-hints", Static).update(rules_of_thumb(cfg, params))
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
