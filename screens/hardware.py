"""Step 2: hardware. What this machine offers for training, in plain words."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import LoadingIndicator, Static

from screens.step import WizardStep

EXPLAIN = (
    "What decides how you can train is memory. A model's weights take 2 bytes per parameter in "
    "16-bit (a 7B model: about 14 GB), 1 byte with an 8-bit base, about half a byte with a 4-bit "
    "base. Rule of thumb for adapter training (LoRA): with at least twice the 16-bit size in memory, "
    "keep the base in 16-bit; with at least once, load it in 8-bit (INT8); below that, in 4-bit "
    "(QLoRA). Training every weight (full fine-tuning) needs far more: gradients and two optimizer "
    "states per parameter, over 100 GB for a 7B model. The next steps do this arithmetic for you."
)


class HardwareScreen(WizardStep[Any]):
    """Shows the hardware profile; its answer is the ``HardwareProfile``."""

    STEP = 1

    def __init__(self, engine) -> None:
        super().__init__()
        self.engine = engine
        self.profile: Any = None

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(classes="body"):
            yield Static("What this machine has", classes="section")
            yield LoadingIndicator(id="hw-loading")
            yield Static(id="hw-lines")
            yield Static("What that means", classes="section")
            yield Static(EXPLAIN, classes="lead")

    def on_mount(self) -> None:
        self.set_ready(False)
        self.set_status("Looking at the hardware…")
        self._probe()

    @work(thread=True, exclusive=True, group="hardware")
    def _probe(self) -> None:
        try:
            lines = self.engine.hardware_lines()
            error = None
        except Exception as exc:  # noqa: BLE001 - the probe must never take the wizard down
            lines, error = [], str(exc)
        self.app.call_from_thread(self._show, lines, error)

    def _show(self, lines: list[str], error: str | None) -> None:
        self.query_one("#hw-loading").display = False
        if error:
            self.query_one("#hw-lines", Static).update(f"The hardware probe failed: {error}")
            self.set_status("Training can still be planned for the CPU.", error=True)
        else:
            self.query_one("#hw-lines", Static).update("\n".join(f"• {line}" for line in lines))
            self.set_status("Next: choose the model.")
        self.profile = self.engine.hardware() if not error else None
        self.set_ready(True)
        self.query_one("#step-next").focus()

    def result(self) -> Any:
        return self.profile if self.profile is not None else False
