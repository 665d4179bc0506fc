"""Export a finished run: to Ollama, to a GGUF file, or to the Hugging Face Hub.

The export loads the model (torch, llama.cpp), so it never runs in the UI process:
this screen runs ``llm-cockpit export`` as a child process and shows its output. On an
installation without the export engine it shows the command to run instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from screens import services
from widgets.command import CommandLog

TARGETS = [("Ollama (merge, GGUF, Modelfile, ollama create)", "ollama"),
           ("GGUF file only (llama.cpp, LM Studio)", "gguf"),
           ("Hugging Face Hub (token from the environment)", "hf")]
QUANTS = [("q8_0 - near lossless, half of f16", "q8_0"), ("f16 - exact, largest", "f16"),
          ("bf16 - exact, for bf16 models", "bf16"), ("q5_k_m - small, needs llama-quantize", "q5_k_m"),
          ("q4_k_m - smallest, needs llama-quantize", "q4_k_m")]


def default_model_name(run_dir: Path) -> str:
    """An Ollama-safe name for the run's model (lowercase letters, digits, - and .)."""
    name = re.sub(r"[^a-z0-9.-]+", "-", run_dir.name.lower()).strip("-.")
    return f"cockpit-{name}"[:60]


class ExportScreen(ModalScreen[None]):
    """Pick a target, a quantization and a name, then watch the export run."""

    CSS_PATH = "modal.tcss"
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, run_dir: Path, *, available: bool | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.available = services.export_available() if available is None else available

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"[b]Export[/b] {self.run_dir.name}", classes="title")
            with Horizontal(classes="row"):
                yield Label("target", classes="label")
                yield Select(TARGETS, value="ollama", allow_blank=False, id="target")
            with Horizontal(classes="row"):
                yield Label("quantize", classes="label")
                yield Select(QUANTS, value="q8_0", allow_blank=False, id="quant")
            with Horizontal(classes="row"):
                yield Label("name", classes="label")
                yield Input(default_model_name(self.run_dir), id="name")
            yield Static(self._command(), classes="command", id="command")
            if self.available:
                yield CommandLog(id="log")
            else:
                yield Static("This installation has no export engine. Run the command above in a "
                             "shell once it has (it is the same command the Export button runs).",
                             id="unavailable")
            with Horizontal(classes="buttons"):
                yield Button("Close", id="close")
                if self.available:
                    yield Button("Export", id="run", variant="primary")

    def _options(self) -> tuple[str, str | None, str | None]:
        target = str(self.query_one("#target", Select).value) if self.is_mounted else "ollama"
        quant = str(self.query_one("#quant", Select).value) if self.is_mounted else "q8_0"
        name = self.query_one("#name", Input).value.strip() if self.is_mounted else default_model_name(self.run_dir)
        return target, (quant if target != "hf" else None), (name or None)

    def _command(self) -> str:
        target, quant, name = self._options()
        return services.export_command(self.run_dir, target, quant, name)

    @on(Select.Changed, "#target")
    def _target_changed(self, event: Select.Changed) -> None:
        # an Ollama name is no Hub repository: the Hub needs OWNER/REPO, typed by the person
        name = self.query_one("#name", Input)
        default = default_model_name(self.run_dir)
        if event.value == "hf" and name.value == default:
            name.value, name.placeholder = "", "OWNER/REPO on the Hugging Face Hub"
        elif event.value != "hf" and not name.value:
            name.value = default

    @on(Select.Changed)
    @on(Input.Changed)
    def _options_changed(self) -> None:
        self.query_one("#command", Static).update(self._command())

    @on(Button.Pressed, "#run")
    def _run(self) -> None:
        log = self.query_one(CommandLog)
        if log.running:
            return
        target, quant, name = self._options()
        args = ["export", str(self.run_dir), "--to", target]
        if quant:
            args += ["--quant", quant]
        if name:
            args += ["--name", name]
        self.query_one("#run", Button).disabled = True
        log.run(services.cli_command(*args))

    @on(CommandLog.Finished)
    def _finished(self, message: CommandLog.Finished) -> None:
        self.query_one("#run", Button).disabled = False
        if message.returncode == 0:
            self.notify("Export finished; the last lines say how to run the model.")
        else:
            detail = message.error or f"exit code {message.returncode}"
            self.notify(f"Export failed ({detail}); the log says why.", severity="error")

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        if self.available and self.query_one(CommandLog).running:
            self.query_one(CommandLog).cancel()
        self.dismiss(None)
