"""A table of training runs: state, model, method, progress, best loss and age; space marks runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from cockpit.run.follow import fmt_age, fmt_num
from cockpit.run.rundir import RunInfo

STATE_STYLES = {"running": "bold", "starting": "italic", "finished": "", "stopped": "italic", "failed": "bold reverse"}
COLUMNS = ("run", "state", "model", "method", "progress", "best loss", "age")
MARK = "● "  # before the name of a marked run


def short_model(model: str) -> str:
    """``HuggingFaceTB/SmolLM2-135M-Instruct`` -> ``SmolLM2-135M-Instruct``."""
    return model.rstrip("/").rsplit("/", 1)[-1] or model


class RunsTable(DataTable):
    """One row per run; Enter (or a click) posts :class:`RunsTable.Chosen`. Space marks or
    unmarks the run under the cursor (:attr:`marked`, in the order they were marked)."""

    BINDINGS = [Binding("space", "toggle_mark", "Mark")]

    class Chosen(Message):
        """The person picked this run."""

        def __init__(self, run_dir: Path) -> None:
            super().__init__()
            self.run_dir = run_dir

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self._paths: dict[str, Path] = {}
        self._names: dict[str, str] = {}
        self._marked: list[str] = []  # row keys, in the order they were marked

    def on_mount(self) -> None:
        self._run_column = self.add_columns(*COLUMNS)[0]

    @property
    def marked(self) -> list[Path]:
        """The marked runs still in the table, in the order they were marked."""
        return [self._paths[key] for key in self._marked if key in self._paths]

    def action_toggle_mark(self) -> None:
        if not self.row_count:
            return
        key = str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        if key in self._marked:
            self._marked.remove(key)
        else:
            self._marked.append(key)
        self.update_cell(key, self._run_column, self._name_cell(key), update_width=True)

    def _name_cell(self, key: str) -> str | Text:
        name = self._names.get(key, "")
        return Text.assemble((MARK, "bold"), name) if key in self._marked else name

    def show(self, runs: Sequence[RunInfo], now: float) -> None:
        """Fill the table; ``now`` (unix seconds) is injected so ages are reproducible."""
        self.clear()
        self._paths = {}
        for info in runs:
            key = str(info.path)
            self._paths[key] = info.path
            self._names[key] = info.name
            progress = f"{info.step}/{info.total_steps}" if info.total_steps else str(info.step or "-")
            self.add_row(
                self._name_cell(key),
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
