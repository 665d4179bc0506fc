"""The compare screen: two or more runs' loss curves overlaid, their final numbers, the
settings in which they differ (:func:`cockpit.evaluation.compare.compare_runs`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich import box
from rich.console import Group
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from cockpit.evaluation.compare import HIGHER, LOWER, Comparison, compare_runs, letter_for
from cockpit.errors import CockpitError
from widgets.chart import LineChart

X_AXES = {"step": "steps", "tokens": "tokens seen"}
ARROWS = {LOWER: " ↓", HIGHER: " ↑"}
SETTINGS_MIN_WIDTH = 40  # the settings table goes beside the numbers when it gets this much (or all it needs)


class CompareScreen(Screen[None]):
    """Runs side by side; ``t`` puts steps or tokens seen on the charts' x axis, ``g`` reads
    the runs again (the screen is a snapshot, not a live view)."""

    CSS_PATH = "compare.tcss"
    BINDINGS = [
        Binding("t", "toggle_x", "Steps/tokens"),
        Binding("g", "reload", "Refresh"),
        Binding("escape,q", "back", "Back"),
    ]

    class Loaded(Message):
        """The comparison (or the line that says why there is none), from the worker."""

        def __init__(self, result: Comparison | None, error: str | None = None) -> None:
            super().__init__()
            self.result = result
            self.error = error

    def __init__(self, run_dirs: Sequence[str | Path]) -> None:
        super().__init__()
        self.run_dirs = [Path(p) for p in run_dirs]
        self.result: Comparison | None = None
        self.error: str | None = None
        self.x = "step"

    def compose(self) -> ComposeResult:
        letters = [letter_for(i) for i in range(len(self.run_dirs))]
        yield Static(id="compare-title")
        yield Static(id="compare-runs")
        with Horizontal(id="compare-charts"):
            yield LineChart("train loss", letters, id="compare-loss", empty_text="reading the runs")
            yield LineChart("eval loss", letters, id="compare-eval", empty_text="reading the runs")
        with VerticalScroll(id="compare-tables"):
            yield Static(id="compare-metrics")
            yield Static(id="compare-settings")
        yield Footer()

    def on_mount(self) -> None:
        self._show_title()
        self._load()

    @work(thread=True, exclusive=True, name="compare runs")
    def _load(self) -> None:
        # reading every event of long runs takes a moment: off the UI thread, which only gets the result
        try:
            self.post_message(self.Loaded(compare_runs(self.run_dirs)))
        except CockpitError as exc:
            self.post_message(self.Loaded(None, exc.one_line()))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.result, self.error = message.result, message.error
        self._show_title()
        if self.result is None:
            for chart in self.query(LineChart):
                chart.empty_text = "nothing to compare"
                chart.refresh()
            self.query_one("#compare-metrics", Static).update(Text(f"Cannot compare: {self.error}", "bold"))
            return
        self._show_runs()
        self._show_curves()
        self.query_one("#compare-metrics", Static).update(self._metrics_table())
        self.query_one("#compare-settings", Static).update(self._settings_table())
        self._arrange()
        self.query_one("#compare-tables", VerticalScroll).focus()

    def on_resize(self) -> None:
        self._arrange()

    def _arrange(self) -> None:
        """The two tables side by side when the settings get enough room beside the numbers
        (each table's natural width decides, not a fixed breakpoint), else one under the other."""
        if self.result is None:
            return
        console = self.app.console
        numbers = Measurement.get(console, console.options, self._metrics_table()).maximum
        settings = Measurement.get(console, console.options, self._settings_table()).maximum
        room = self.size.width - numbers - 4  # each table's padding: one column either side
        self.set_class(room >= min(settings, SETTINGS_MIN_WIDTH), "-side")

    # -- keys ------------------------------------------------------------------------
    def action_toggle_x(self) -> None:
        self.x = "tokens" if self.x == "step" else "step"
        self._show_title()
        self._show_curves()

    def action_reload(self) -> None:
        """Read the runs again (a run still training has moved on)."""
        self._load()

    def action_back(self) -> None:
        self.app.pop_screen()

    # -- drawing ---------------------------------------------------------------------
    def _show_title(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" Compare {len(self.run_dirs)} runs", "bold")
        other = "tokens" if self.x == "step" else "step"
        text.append(f" · x axis: {X_AXES[self.x]} (t: {X_AXES[other]})")
        self.query_one("#compare-title", Static).update(text)

    def _show_runs(self) -> None:
        assert self.result is not None
        chart = self.query_one("#compare-loss", LineChart)
        lines = []
        for i, run in enumerate(self.result.runs):
            progress = f"{run.step}/{run.total_steps}" if run.total_steps else str(run.step)
            line = Text(no_wrap=True, overflow="ellipsis")
            colour = chart.get_component_rich_style(f"linechart--s{min(i, LineChart.SERIES_STYLES - 1)}")
            line.append(f" ━ {run.letter} ", colour)  # the colour of this run's curves
            line.append(run.name, "bold")
            line.append(f"  {run.method} · {run.state} · step {progress}")
            lines.append(line)
        self.query_one("#compare-runs", Static).update(Group(*lines))

    def _show_curves(self) -> None:
        if self.result is None:
            return
        for chart_id, name in (("#compare-loss", "loss"), ("#compare-eval", "eval_loss")):
            chart = self.query_one(chart_id, LineChart)
            chart.x_label = "tokens" if self.x == "tokens" else "step"
            chart.empty_text = "no eval loss logged" if name == "eval_loss" else "no steps logged"
            chart.set_series(*(run.curves[name].points(self.x) for run in self.result.runs))
            chart.refresh()

    def _metrics_table(self) -> Table:
        assert self.result is not None
        table = Table(title="final numbers (* best)", title_justify="left", caption="↓ lower is better, ↑ higher",
                      caption_justify="left", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1), expand=False)
        table.add_column("metric", no_wrap=True)
        for run in self.result.runs:
            table.add_column(run.letter, justify="right", no_wrap=True)
        for row in self.result.metrics:
            cells = [Text(f"{c} *", "bold green") if i in row.best else Text(f"{c}  ") for i, c in enumerate(row.cells)]
            table.add_row(row.label + ARROWS.get(row.better, ""), *cells)
        return table

    def _settings_table(self) -> Table | Text:
        assert self.result is not None
        if not self.result.settings:
            return Text("The runs have the same settings.")
        table = Table(title="settings that differ", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                      padding=(0, 1), expand=False)
        table.add_column("setting", no_wrap=True)
        for run in self.result.runs:
            table.add_column(run.letter, overflow="fold")
        for row in self.result.settings:
            table.add_row(row.key, *row.cells)
        if self.result.notes:
            table.caption = "\n".join(self.result.notes)
            table.caption_justify = "left"
        return table
