"""Step 5: the data. Pick a file (or the bundled demo), see its report, lengths and examples."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, LoadingIndicator, Static

from cockpit.errors import CockpitError
from screens.filepicker import FilePickerScreen
from screens.step import WizardStep
from cockpit.app.wizard import DataChoice, DataView, demo_data
from widgets.histogram import Histogram

TEACH = ("A file (JSONL, JSON, CSV, TSV, Parquet), a directory or glob of them, or a Hub dataset as "
         "hf:org/name. Each record's format is recognised: prompt/completion (recommended), chat messages, "
         "Alpaca, ShareGPT, or plain text for continued pretraining. The model sees the whole "
         "conversation through its chat template but learns only the answers (highlighted above; the "
         "prompt's tokens carry no loss). A few dozen clean examples can teach a narrow new skill; "
         "empty answers, duplicates and very long examples hurt, so they are reported here. Keep some "
         "examples apart for evaluation: a separate file, or 10% held out.")
LEARNED = "bold green"


class DataScreen(WizardStep[DataChoice]):
    """Validate the training file with the model's own tokenizer before anything starts."""

    STEP = 4
    CSS_PATH = ["step.tcss", "data.tcss"]

    class Checked(Message):
        """The data report for ``path`` (or the one-line error) is ready."""

        def __init__(self, path: str, view: DataView | None, error: str | None) -> None:
            super().__init__()
            self.path, self.view, self.error = path, view, error

    def __init__(self, engine, model: str, max_length: int, previous: DataChoice | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.model = model
        self.max_length = max_length
        demo_train, demo_eval = demo_data()
        self.choice = previous or DataChoice(data=demo_train, eval_data=demo_eval)
        self.view: DataView | None = None

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(classes="body"):
            with Horizontal(classes="data-row"):
                yield Label("train", classes="data-label")
                yield Input(self.choice.data, placeholder="a file, a directory or glob of files, or hf:org/name",
                            id="data-path")
                yield Button("Demo", id="data-demo")
                yield Button("Browse", id="data-browse")
            with Horizontal(classes="data-row"):
                yield Label("eval", classes="data-label")
                yield Input(self.choice.eval_data or "", placeholder="empty: hold out 10% of train",
                            id="data-eval")
            yield LoadingIndicator(id="data-loading")
            yield Static(id="data-report")
            yield Static("Tokens per example", classes="section")
            yield Histogram(id="data-hist")
            yield Static("What the model sees (learned tokens highlighted)", classes="section")
            yield Static(id="data-examples")
            yield Static("About training data", classes="section")
            yield Static(TEACH, classes="lead")

    def on_mount(self) -> None:
        self.query_one("#data-path", Input).focus()
        self._check()

    @on(Input.Submitted, "#data-path")
    def _check(self) -> None:
        path = self.query_one("#data-path", Input).value.strip()
        demo_train, demo_eval = demo_data()
        evaluation = self.query_one("#data-eval", Input)
        if path != demo_train and evaluation.value.strip() == demo_eval:
            evaluation.value = ""  # the demo's held-out file says nothing about other data: hold out 10%
        self.view = None
        self.set_ready(False)
        self.query_one("#data-loading").display = True
        self.set_status(f"Reading {path} and counting tokens with the model's tokenizer…")
        self._measure(path)

    @work(thread=True, exclusive=True, group="data")
    def _measure(self, path: str) -> None:
        try:
            view = self.engine.data_view(path, self.model, self.max_length)
        except CockpitError as exc:
            self.post_message(self.Checked(path, None, exc.one_line()))
        except Exception as exc:  # noqa: BLE001 - a tokenizer that cannot load must not kill the wizard
            self.post_message(self.Checked(path, None, f"could not measure {path}: {exc}"))
        else:
            self.post_message(self.Checked(path, view, None))

    @on(Checked)
    def _checked(self, message: Checked) -> None:
        if message.path != self.query_one("#data-path", Input).value.strip():
            return  # an older check finished after the path changed
        self.query_one("#data-loading").display = False
        report_box = self.query_one("#data-report", Static)
        if message.view is None:
            report_box.update(Text(message.error or "no report", style="bold"))
            # nothing of the previous file may stay on screen as if it described this one
            self.query_one("#data-hist", Histogram).show([], limit=self.max_length)
            self.query_one("#data-examples", Static).update("")
            self.set_status("Fix the path or the file, then press enter in the path field.", error=True)
            return
        self.view = view = message.view
        report = view.report
        lines = report.to_lines(max_problems=8, marked=False)
        text = Text()
        for line in lines:
            style = "bold" if line in ("OK",) or line.startswith("NOT OK") else ""
            text.append(line + "\n", style)
        if view.tokenizer_note:
            text.append(f"note: {view.tokenizer_note}\n", "italic")
        report_box.update(text)
        self.query_one("#data-hist", Histogram).show(view.lengths, limit=self.max_length)
        self.query_one("#data-examples", Static).update(marked_text(view.examples))
        self.set_ready(report.ok)
        stage = getattr(report, "stage", None)  # preference data: trained by DPO or KTO
        ready = (f"{report.usable} {'pairs' if stage == 'dpo' else 'answers'}: preference data, trained with "
                 f"stage={stage}. Next: review the settings." if stage else
                 f"{report.usable} examples, ready. Next: review the settings.")
        self.set_status(ready if report.ok else "This file has problems (listed above): fix them first.",
                        error=not report.ok)

    @on(Button.Pressed, "#data-demo")
    def _demo(self) -> None:
        train, evaluation = demo_data()
        self.query_one("#data-path", Input).value = train
        self.query_one("#data-eval", Input).value = evaluation
        self._check()

    @on(Button.Pressed, "#data-browse")
    def _browse(self) -> None:
        self.app.push_screen(FilePickerScreen(Path.cwd()), self._picked)

    def _picked(self, path: Path | None) -> None:
        if path is None:
            return
        try:
            shown = str(path.relative_to(Path.cwd()))
        except ValueError:
            shown = str(path)
        self.query_one("#data-path", Input).value = shown
        self.query_one("#data-eval", Input).value = ""
        self._check()

    def result(self) -> DataChoice | None:
        if self.view is None or not self.view.report.ok:
            return None
        evaluation = self.query_one("#data-eval", Input).value.strip() or None
        problem = self.engine.source_problem(evaluation) if evaluation else None
        if problem:
            self.set_status(f"eval data: {problem} (leave it empty to hold out 10%)", error=True)
            return None
        stage = getattr(self.view.report, "stage", "sft")
        if evaluation and stage != "sft" and not self.engine.is_preference(evaluation):
            self.set_status(f"eval data: {evaluation} holds no preference pairs, and stage={stage} evaluates on "
                            "pairs (leave it empty to hold out 10%)", error=True)
            return None
        stats = self.view.report.token_stats or {}
        mean = stats.get("mean")
        if self.view.report.format == "text":
            mean = min(mean or self.max_length, self.max_length)  # packed rows of max_length
        return DataChoice(data=self.query_one("#data-path", Input).value.strip(), eval_data=evaluation,
                          examples=self.view.train_rows, mean_tokens=mean,
                          stage=stage)


def marked_text(examples: list[dict]) -> Text:
    """The first examples as the model sees them: the template's text dim, the learned tokens bright."""
    text = Text()
    for m in examples:
        cut = ", cut at max_length" if m["truncated"] else ""
        text.append(f"{m['where']}: {m['learned_share']:.0%} of its tokens learned{cut}\n", "italic")
        for chunk, learned in m["segments"]:
            text.append(chunk, LEARNED if learned else "dim")
        text.rstrip()
        text.append("\n\n")
    return text
