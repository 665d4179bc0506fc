"""Step 4: the method. Memory breakdown against the device, fit verdict, recommendation."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static, Switch

from cockpit.errors import CockpitError
from cockpit.run.follow import fmt_bytes
from screens.step import WizardStep
from cockpit.app.wizard import MethodChoice, PlanView
from widgets.meters import MemoryBar, Segment

METHOD_OPTIONS = [
    ("auto - let the advisor pick what fits", "auto"),
    ("lora - adapters on a 16-bit base", "lora"),
    ("int8 - adapters on an 8-bit base", "int8"),
    ("qlora - adapters on a 4-bit base (least memory)", "qlora"),
    ("full - train every weight (most memory)", "full"),
]
SEGMENT_LABELS = {"weights": "weights", "trainable_states": "trained params + optimizer",
                  "activations": "activations", "logits": "logits", "overhead": "runtime"}


class MethodScreen(WizardStep[MethodChoice]):
    """Choose how to train; every change re-estimates the memory at once."""

    STEP = 3
    CSS_PATH = ["step.tcss", "method.tcss"]
    BINDINGS = [Binding("u", "use_recommendation", "Use recommendation")]

    def __init__(self, engine, model: str, previous: MethodChoice | None = None, auto: bool = True) -> None:
        super().__init__()
        self.engine = engine
        self.model = self.initial_model = model
        self.choice = previous or engine.default_method()
        self.auto = auto and previous is None
        self.plan: PlanView | None = None

    def compose_body(self) -> ComposeResult:
        c = self.choice
        with VerticalScroll(classes="body"):
            yield Static(id="method-model")
            with Horizontal(classes="method-row"):
                yield Label("method", classes="method-label")
                yield Select(METHOD_OPTIONS, value="auto" if self.auto else c.method, allow_blank=False,
                             id="method-select")
            with Horizontal(classes="method-row"):
                yield Label("batch", classes="method-label")
                yield Input(str(c.batch_size), type="integer", id="method-batch", classes="method-num")
                yield Label("tokens", classes="method-label")
                yield Input(str(c.max_length), type="integer", id="method-seq", classes="method-num")
                yield Label("LoRA r", classes="method-label")
                yield Input(str(c.lora_r), type="integer", id="method-rank", classes="method-num")
            with Horizontal(classes="method-row"):
                yield Label("gradient checkpointing", classes="method-label-wide")
                yield Switch(value=c.grad_ckpt, id="method-ckpt")
                yield Static(" accumulate", classes="method-label")
                yield Input(str(c.grad_accum), type="integer", id="method-accum", classes="method-num")
            yield Static("Peak memory of one training step", classes="section")
            yield MemoryBar(id="method-bar")
            yield Static(id="method-verdict")
            with Horizontal(id="method-rec-row"):
                yield Static(id="method-rec")
                yield Button("Use it (u)", id="method-use")
            yield Static("Why", classes="section")
            yield Static(id="method-reasons")
            with Vertical(id="method-ladder-box"):
                yield Static("When it does not fit: the OOM ladder, cheapest change first", classes="section")
                yield Static(id="method-ladder")

    def on_mount(self) -> None:
        self.query_one("#method-select", Select).focus()
        self._replan()

    def _int(self, widget_id: str, default: int) -> int:
        try:
            return max(1, int(self.query_one(widget_id, Input).value))
        except ValueError:
            return default

    def _current(self) -> MethodChoice:
        method = str(self.query_one("#method-select", Select).value)
        return MethodChoice(
            method=self.choice.method if method == "auto" else method,
            batch_size=self._int("#method-batch", self.choice.batch_size),
            grad_accum=self._int("#method-accum", self.choice.grad_accum),
            max_length=self._int("#method-seq", self.choice.max_length),
            lora_r=self._int("#method-rank", self.choice.lora_r),
            grad_ckpt=self.query_one("#method-ckpt", Switch).value,
        )

    @on(Select.Changed)
    @on(Input.Changed)
    @on(Switch.Changed)
    def _replan(self) -> None:
        auto = str(self.query_one("#method-select", Select).value) == "auto"
        current = self._current()
        try:
            plan = self.engine.plan(self.model, current, auto=auto)
        except CockpitError as exc:
            self.set_status(exc.one_line(), error=True)
            self.set_ready(False)
            return
        self.plan = plan
        self._show(plan, current, auto)

    def _show(self, plan: PlanView, current: MethodChoice, auto: bool) -> None:
        rec = plan.recommendation
        self.query_one("#method-model", Static).update(Text.assemble(("Model: ", "bold"), self.model))
        shown = rec.estimate if auto and rec.method else plan.asked
        where = "GPU" if self.engine.device == "cuda" else "RAM"
        segments = [Segment(SEGMENT_LABELS.get(k, k), v) for k, v in shown.breakdown.items() if v > 0]
        fits = shown.total_bytes <= rec.usable_bytes
        caption = (f"{fmt_bytes(shown.total_bytes)} of {fmt_bytes(rec.usable_bytes)} usable "
                   f"({fmt_bytes(rec.budget_bytes)} {where} less 10% headroom) - "
                   + ("fits" if fits else "does NOT fit"))
        self.query_one("#method-bar", MemoryBar).update_bar(segments, rec.usable_bytes, caption)
        verdict = self.query_one("#method-verdict", Static)
        trained = (f"trains {shown.trainable_params / 1e6:,.1f}M of {shown.params / 1e6:,.0f}M parameters "
                   f"({100 * shown.trainable_params / max(1, shown.params):.2f}%)")
        verdict.update(Text(("✔ Fits. " if fits else "✖ Too big. ") + trained))
        verdict.set_classes("good" if fits else "bad")
        rec_text = Text()
        if rec.method:
            rec_text.append("Recommended: ", "bold")
            if rec.settings.model != plan.asked_model:
                rec_text.append(f"{rec.settings.model}, ")
            rec_text.append(rec.settings.describe())
        else:
            rec_text.append("Nothing fits this machine, even at the bottom of the ladder.", "bold")
        self.query_one("#method-rec", Static).update(rec_text)
        self.query_one("#method-use", Button).disabled = not rec.method or self._matches(plan, current)
        self.query_one("#method-reasons", Static).update("\n".join(f"• {r}" for r in rec.reasons))
        ladder = rec.ladder
        self.query_one("#method-ladder-box").display = bool(ladder)
        self.query_one("#method-ladder", Static).update(Text("\n").join(
            Text(f"{'✔' if step.fits else '✖'} {step.action}: {fmt_bytes(step.total_bytes)}",
                 style="bold" if step.fits else "") for step in ladder))
        self.set_ready(fits or (auto and rec.method is not None))
        self.set_status("Next: your data." if fits or auto else
                        "This does not fit: press u for the recommendation, or change the settings.",
                        error=not (fits or auto))

    @staticmethod
    def _matches(plan: PlanView, current: MethodChoice) -> bool:
        """Whether the fields already hold the advisor's settings."""
        s = plan.recommendation.settings
        return (s.model, s.method, s.batch, s.seq, s.grad_ckpt, s.grad_accum) == (
            plan.asked_model, current.method, current.batch_size, current.max_length, current.grad_ckpt,
            current.grad_accum)

    @on(Button.Pressed, "#method-use")
    def action_use_recommendation(self) -> None:
        """Copy the advisor's settings into the fields (and leave auto)."""
        if self.plan is None:
            return
        choice = self.plan.recommended_choice(self._current())
        if choice is None:
            return
        if choice.model:  # the way to fit is a smaller model
            self.model = choice.model
        with self.prevent(Select.Changed, Input.Changed, Switch.Changed):
            self.query_one("#method-select", Select).value = choice.method
            self.query_one("#method-batch", Input).value = str(choice.batch_size)
            self.query_one("#method-accum", Input).value = str(choice.grad_accum)
            self.query_one("#method-seq", Input).value = str(choice.max_length)
            self.query_one("#method-ckpt", Switch).value = choice.grad_ckpt
        self._replan()

    def result(self) -> MethodChoice | None:
        if self.plan is None:
            return None
        current = self._current()
        if str(self.query_one("#method-select", Select).value) == "auto":
            return self.plan.recommended_choice(current)
        current.model = self.model if self.model != self.initial_model else None
        return current
