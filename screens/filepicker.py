"""Pick a data file by browsing directories (a modal answering with a path or None)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Static

DATA_SUFFIXES = (".jsonl", ".json")


class DataTree(DirectoryTree):
    """Directories and JSON/JSONL files only; hidden entries left out."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".")
                and (p.is_dir() or p.suffix.lower() in DATA_SUFFIXES)]


class FilePickerScreen(ModalScreen[Path | None]):
    """Arrows move, enter opens a directory or picks a file, escape cancels."""

    CSS_PATH = "filepicker.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"Pick a JSONL file under {self.root}  (escape cancels)", classes="title")
            yield DataTree(self.root, id="picker-tree")

    def on_mount(self) -> None:
        self.query_one(DataTree).focus()

    @on(DirectoryTree.FileSelected)
    def _picked(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(event.path)

    def action_cancel(self) -> None:
        self.dismiss(None)
