"""A table of training runs: state, model, method, progress, best loss and age."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import DataTable

from cockpit.follow import fmt_age, fmt_num
from cockpit.rundir import RunInfo

STATE_STYLES = {"running": "bold", "starting": "italic", "finished": "", "stopped": "italic", "failed": "bold reverse"}
COLUMNS = ("run", "state", "model", "method", "progress", "best loss", "age")


def short_model(model: str) -> str:
    """``HuggingFaceTB/SmolLM2-135M-Instruct`` -> ``SmolLM2-135M-Instruct``."""
    return model.rstrip("/").rsplit("/", 1)[-1] or model


class RunsTable(DataTable):
    """One row per run; Enter (or a click) posts :class:`RunsTable.Chosen`."""

    class Chosen(Message):
        """The person picked this run."""

        def __init__(self, run_dir: Path) -> None:
            super().__init__()
            self.run_dir = run_dir

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self._paths: dict[str, Path] = {}

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def show(self, runs: Sequence[RunInfo], now: float) -> None:
        """Fill the table; ``now`` (unix seconds) is injected so ages are reproducible."""
        self.clear()
        self._paths = {}
        for info in runs:
            key = str(info.path)
            self._paths[key] = info.path
            progress = f"{info.step}/{info.total_steps}" if info.total_steps else str(info.step or "-")
            self.add_row(
                info.name,
                Text(info.state, style=STATE_STYLES.get(info.state, "")),
                short_model(info.model),
                info.method,
                progress,
                fmt_num(info.best_loss if info.best_loss is not None else info.last_loss),
                fmt_age(info.started, now),
                key=key,
            )

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        path = self._paths.get(str(event.row_key.value))
        if path is not None:
            self.post_message(self.Chosen(path))
