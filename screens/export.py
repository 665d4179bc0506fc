"""Export a finished run: to Ollama, to a GGUF file, or to the Hugging Face Hub.

The export loads the model (torch, llama.cpp), so it never runs in the UI process:
this screen runs ``llm-cockpit export`` as a child process and shows its output (one
line per stage; the libraries' chatter goes to the run's export log), so a crash or
an out-of-memory there never takes the cockpit down.

Without llama.cpp's runtime (llama-cpp-python, built from source on first use) the screen
says what the export loses and offers to install it first (``--install-runtime``): ticked
for q4_k_m/q5_k_m, which cannot be made without it, unticked otherwise (the GGUF is
written, the llama.cpp proof is skipped).
"""

from __future__ import annotations

import re
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from cockpit.app import runs as services
from cockpit.export.convert import DEFAULT_QUANT
from widgets.command import CommandLog

TARGETS = [("Ollama (merge, GGUF, Modelfile, ollama create)", "ollama"),
           ("GGUF file only (llama.cpp, LM Studio)", "gguf"),
           ("Hugging Face Hub (token from the environment)", "hf")]
QUANTS = [("q8_0 - near lossless, half of f16", "q8_0"), ("f16 - exact, largest", "f16"),
          ("bf16 - exact, for bf16 models", "bf16"), ("q5_k_m - small, needs llama-quantize", "q5_k_m"),
          ("q4_k_m - smallest, needs llama-quantize", "q4_k_m")]
INSTALL_LABEL = "install it first (pip builds llama.cpp: about 10 minutes, once)"


def default_model_name(run_dir: Path) -> str:
    """An Ollama-safe name for the run's model (lowercase letters, digits, - and .)."""
    name = re.sub(r"[^a-z0-9.-]+", "-", run_dir.name.lower()).strip("-.")
    return f"cockpit-{name}"[:60]


class ExportScreen(ModalScreen[None]):
    """Pick a target, a quantization and a name, then watch the export run."""

    CSS_PATH = "modal.tcss"
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, run_dir: Path, *, runtime_missing: bool | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.runtime_missing = services.llama_runtime_missing() if runtime_missing is None else runtime_missing

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"[b]Export[/b] {self.run_dir.name}", classes="title")
            with Horizontal(classes="row"):
                yield Label("target", classes="label")
                yield Select(TARGETS, value="ollama", allow_blank=False, id="target", compact=True)
            with Horizontal(classes="row"):
                yield Label("quantize", classes="label")
                yield Select(QUANTS, value=DEFAULT_QUANT, allow_blank=False, id="quant", compact=True)
            with Horizontal(classes="row"):
                yield Label("name", classes="label")
                yield Input(default_model_name(self.run_dir), id="name", compact=True)
            if self.runtime_missing:
                yield Static(services.runtime_note(DEFAULT_QUANT), classes="runtime-note", id="runtime-note")
                yield Checkbox(INSTALL_LABEL, value=False, id="install-runtime", compact=True)
            yield Static(self._command(), classes="command", id="command")
            yield CommandLog(id="log")
            with Horizontal(classes="buttons"):
                yield Button("Close", id="close")
                yield Button("Export", id="run", variant="primary")

    def _options(self) -> tuple[str, str | None, str | None]:
        target = str(self.query_one("#target", Select).value) if self.is_mounted else "ollama"
        quant = str(self.query_one("#quant", Select).value) if self.is_mounted else DEFAULT_QUANT
        name = self.query_one("#name", Input).value.strip() if self.is_mounted else default_model_name(self.run_dir)
        return target, (quant if target != "hf" else None), (name or None)

    def _install_runtime(self) -> bool:
        boxes = self.query("#install-runtime") if self.is_mounted else []
        return bool(boxes) and boxes.first(Checkbox).value and self._options()[0] != "hf"

    def _command(self) -> str:
        target, quant, name = self._options()
        return services.export_command(self.run_dir, target, quant, name, install_runtime=self._install_runtime())

    @on(Select.Changed, "#quant")
    def _quant_changed(self, event: Select.Changed) -> None:
        if not self.runtime_missing:
            return
        # A K-quant cannot be made without the runtime: offer the install ticked; the other
        # types only lose the proof, so leave that choice to the person.
        self.query_one("#install-runtime", Checkbox).value = services.runtime_required(str(event.value))
        self.query_one("#runtime-note", Static).update(services.runtime_note(str(event.value)))

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
    @on(Checkbox.Changed)
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
        if self._install_runtime():
            args.append("--install-runtime")
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
        if self.query_one(CommandLog).running:
            self.query_one(CommandLog).cancel()
        self.dismiss(None)
