"""The runs screen: every run (of every known runs directory, or of ``--output-dir``), newest first."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from cockpit.app import runs as services
from widgets.runs_table import RunsTable


class RunsScreen(Screen[None]):
    """Pick a run to open its dashboard, or start a new one."""

    CSS_PATH = "runs.tcss"
    BINDINGS = [
        Binding("enter", "open", "Open", show=True, priority=False),
        Binding("n", "new", "New run"),
        Binding("c", "compare", "Compare marked"),
        Binding("t", "talk", "Talk", show=False),
        Binding("g", "refresh", "Refresh"),
        Binding("q", "app.quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]

    def __init__(self, output_dir: str | Path | None) -> None:
        super().__init__()
        self.output_dir = Path(output_dir) if output_dir is not None else None  # None: every known runs directory

    def compose(self) -> ComposeResult:
        yield Static(f" Runs in {services.runs_place(self.output_dir)}", id="runs-title")
        yield RunsTable(id="runs-table")
        yield Static(id="runs-empty")
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh()

    def action_refresh(self) -> None:
        runs = services.list_runs(self.output_dir)
        self.query_one(RunsTable).show(runs, self.app.now())
        empty = self.query_one("#runs-empty", Static)
        empty.display = not runs
        empty.update("No runs yet. Press n to set one up with the wizard, or run  llm-cockpit train")
        self.query_one(RunsTable).focus()

    def action_open(self) -> None:
        table = self.query_one(RunsTable)
        if table.row_count:
            table.action_select_cursor()

    @on(RunsTable.Chosen)
    def _chosen(self, message: RunsTable.Chosen) -> None:
        self.app.open_run(message.run_dir)

    def action_new(self) -> None:
        self.app.start_wizard()

    def action_compare(self) -> None:
        """Compare the runs marked with space (at least two)."""
        marked = self.query_one(RunsTable).marked
        if len(marked) < 2:
            self.notify("Mark at least two runs with space, then press c to compare them.",
                        title="Compare runs", severity="warning")
            return
        from screens.compare import CompareScreen

        self.app.push_screen(CompareScreen(marked))

    def action_talk(self) -> None:
        """Chat with the highlighted run's model (finished or stopped runs)."""
        table = self.query_one(RunsTable)
        if not table.row_count:
            self.notify("No run to talk to yet.", severity="warning")
            return
        run_dir = Path(str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value))
        from cockpit.run.status import effective_status

        state = str(effective_status(run_dir).get("state", "unknown"))
        if state not in ("finished", "stopped"):
            self.notify(f"Talking needs a finished or stopped run; {run_dir.name} is {state}.", severity="warning")
            return
        self.app.open_chat(run_dir)

    def action_help(self) -> None:
        from screens.help import HelpScreen

        self.app.push_screen(HelpScreen())
