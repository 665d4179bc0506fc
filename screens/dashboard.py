"""The dashboard of one run, live or finished.

It only reads the run directory: a :class:`~widgets.watcher.RunWatcher` follows it in a
thread and posts snapshots, at most four a second; this screen hands each snapshot to
its widgets. Quitting detaches (the trainer is its own process and keeps going);
``s`` asks the trainer to stop gracefully, after a confirmation.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from cockpit.run.follow import RunState, fmt_duration, fmt_num, summary_line
from cockpit.run.status import ACTIVE_STATES
from cockpit.training.stages import stage_charts
from cockpit.app import runs as services
from screens.confirm import ConfirmScreen
from screens.help import HelpScreen
from widgets.chart import LineChart
from widgets.samples import SamplesPanel
from widgets.system import RunProgress, SystemPanel
from widgets.warnings import WarningsPanel
from widgets.watcher import RunWatcher


class DashboardScreen(Screen[None]):
    """Charts, progress, memory, GPU health, samples and warnings of one run."""

    CSS_PATH = "dashboard.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = [
        Binding("s", "stop", "Stop"),
        Binding("q", "detach", "Detach"),
        Binding("d", "detach", "Detach", show=False),
        Binding("e", "export", "Export"),
        Binding("t", "talk", "Talk", show=False),
        Binding("c", "resume", "Continue", show=False),
        Binding("r", "runs", "Runs"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("1", "tab('overview')", "Overview", show=False),
        Binding("2", "tab('samples')", "Samples", show=False),
        Binding("3", "tab('warnings')", "Warnings", show=False),
        Binding("4", "tab('details')", "Details", show=False),
    ]

    def __init__(self, run_dir: str | Path, *, interval: float = 0.25) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.interval = interval
        self.state = RunState(name=self.run_dir.name)
        self.updates = 0

    def compose(self) -> ComposeResult:
        yield Static(self._title_text(), id="run-title")
        yield RunProgress(id="progress")
        with TabbedContent(initial="overview"):
            with TabPane("1 Overview", id="overview"):
                with Horizontal(id="overview-body"):
                    with Vertical(id="main-col"):
                        with Grid(id="charts"):
                            yield LineChart("loss", ("train", "eval"), id="chart-loss")
                            yield LineChart("grad norm", id="chart-grad", robust=True)
                            yield LineChart("learning rate", id="chart-lr")
                            yield LineChart("tokens/s", id="chart-speed")
                        yield SystemPanel(id="system")
                        yield Static(id="latest-warning")
                    with Vertical(id="side-col"):
                        yield SamplesPanel(id="side-samples", max_chars=240)
                        yield WarningsPanel(id="side-warnings", limit=8)
            with TabPane("2 Samples", id="samples"):
                yield SamplesPanel(id="samples-panel")
            with TabPane("3 Warnings", id="warnings"):
                yield WarningsPanel(id="warnings-panel")
            with TabPane("4 Details", id="details"):
                with VerticalScroll(id="details-scroll"):
                    yield Static(id="details-body")
        yield Footer()
        yield RunWatcher(self.run_dir, interval=self.interval, id="watcher")

    @on(RunWatcher.Updated)
    def _on_update(self, message: RunWatcher.Updated) -> None:
        self.updates += 1
        self.show_state(message.state)

    def show_state(self, state: RunState) -> None:
        """Hand a snapshot of the run to the widgets that are visible (also used by tests).

        Hidden tabs are brought up to date when they are opened, so following a fast run
        costs only what is on screen.
        """
        self.state = state
        self._update_static("#run-title", self._title_text())
        self.query_one(RunProgress).show(state)
        active = self.query_one(TabbedContent).active
        if active == "overview":
            series = state.series
            self.query_one("#chart-loss", LineChart).set_series(
                (series["loss"].steps, series["loss"].values),
                (series["eval_loss"].steps, series["eval_loss"].values))
            self.query_one("#chart-grad", LineChart).set_series((series["grad_norm"].steps, series["grad_norm"].values))
            self._show_stage_charts(state)
            self.query_one(SystemPanel).show(state)
            self._update_static("#latest-warning", self._latest_warning_text())
            if self.query_one("#side-col").display:
                self.query_one("#side-samples", SamplesPanel).show(list(state.samples.values()))
                self.query_one("#side-warnings", WarningsPanel).show(state.warnings, state.warning_counts)
        elif active == "samples":
            self.query_one("#samples-panel", SamplesPanel).show(list(state.samples.values()))
        elif active == "warnings":
            self.query_one("#warnings-panel", WarningsPanel).show(state.warnings, state.warning_counts)
        elif active == "details":
            self._update_static("#details-body", self._details_text())

    def _show_stage_charts(self, state: RunState) -> None:
        """Learning rate and speed, or for a preference stage its own charts in their places
        (reward margin and accuracy: ``cockpit.training.stages.stage_charts``)."""
        charts = stage_charts(state.stage) or (("learning rate", (("", "lr"),)), ("tokens/s", (("", "tokens_per_s"),)))
        for chart_id, (title, lines) in zip(("#chart-lr", "#chart-speed"), charts):
            chart = self.query_one(chart_id, LineChart)
            chart.relabel(title, [legend for legend, _ in lines])
            pool = [state.series.get(key) or state.stage_series.get(key) for _, key in lines]
            chart.set_series(*((s.steps, s.values) if s is not None else ([], []) for s in pool))

    def _update_static(self, selector: str, text: Text) -> None:
        widget = self.query_one(selector, Static)
        if getattr(widget, "_shown_text", None) != text:
            widget._shown_text = text
            widget.update(text)

    @on(TabbedContent.TabActivated)
    def _tab_opened(self) -> None:
        self.show_state(self.state)

    def on_resize(self) -> None:
        # The side column appears at the wide breakpoint; a snapshot that came before the
        # layout knew the width (a finished run sends no more) must reach it too.
        self.call_after_refresh(lambda: self.show_state(self.state))  # the state by then, not now

    # -- texts -----------------------------------------------------------------------
    def _title_text(self) -> Text:
        s = self.state
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" " + self.run_dir.name, "bold")
        if s.model:
            text.append(f"  {s.model}")
        if s.method:
            text.append(f"  {s.method}")
        if s.resumes:
            text.append(f"  (resumed {s.resumes}x)")
        return text

    def _latest_warning_text(self) -> Text:
        s = self.state
        if s.error:
            line = Text(f"✖ {s.error}", style="bold")
            line.append("  c: continue from the last checkpoint" if s.state == "failed" and s.checkpoints else
                        f" → {s.advice}" if s.advice else "")
            return line
        if s.state == "finished":
            return Text(f"✔ finished  t: talk · e: export · ?: next steps │ {summary_line(s.summary)}")
        if s.state == "stopped":
            return Text(f"■ stopped at step {s.step}.  c: continue from the last checkpoint · t: talk to it")
        if s.state == "failed":
            return Text(f"■ failed at step {s.step}.  c: continue from the last checkpoint")
        real = [w for w in s.warnings if w.kind != "info"]
        if real:
            w = real[-1]
            return Text(f"⚠ step {w.step} {w.kind}: {w.message}  (3: all warnings)")
        return Text("q detaches: training goes on without this window.  ?: how to read these charts")

    def _details_text(self) -> Text:
        s = self.state
        text = Text()
        rows = [("run", str(self.run_dir)), ("state", s.state), ("model", s.model or "?"),
                ("method", s.method or "?"), ("steps", f"{s.step} of {s.total_steps or '?'}"),
                ("epoch", f"{s.epoch:.2f}"), ("elapsed", fmt_duration(s.elapsed_s)),
                ("last loss", fmt_num(s.loss)), ("best loss", fmt_num(s.best_loss)),
                ("best eval loss", fmt_num(s.best_eval_loss)), ("events read", str(s.events_seen))]
        if s.tokens:
            rows.append(("tokens seen", f"{s.tokens:,}"))
        if s.summary:
            rows.append(("summary", summary_line(s.summary)))
        for step, path in s.checkpoints[-3:]:
            rows.append((f"checkpoint @{step}", path))
        for key, value in rows:
            text.append(f"{key:>16}  ", "bold")
            text.append(f"{value}\n")
        hw = ", ".join(f"{k} {v}" for k, v in s.hardware.items())
        if hw:
            text.append(f"{'hardware':>16}  ", "bold")
            text.append(hw + "\n")
        if s.config:
            text.append("\nconfig\n", "bold")
            for key, value in s.config.items():
                text.append(f"  {key}: {value}\n")
        return text

    # -- actions ---------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    def action_runs(self) -> None:
        self.app.open_runs()

    def action_detach(self) -> None:
        self.app.detach(self.run_dir, self.state.state)

    def action_stop(self) -> None:
        if self.state.state not in ACTIVE_STATES:
            self.notify(f"The run is {self.state.state}; there is nothing to stop.", severity="warning")
            return
        question = (f"Stop {self.run_dir.name} at step {self.state.step}?\n\nThe trainer saves a full "
                    "checkpoint and ends as 'stopped'; `llm-cockpit resume` continues it later.")
        self.app.push_screen(ConfirmScreen(question, yes="Stop training", no="Keep training"), self._stop_confirmed)

    def _stop_confirmed(self, confirmed: bool | None) -> None:
        if not confirmed:
            return
        try:
            services.stop_run(self.run_dir)
        except services.CockpitError as exc:
            self.notify(exc.one_line(), severity="error")
            return
        self.notify("Asked the trainer to stop; it saves a checkpoint first.")

    def action_resume(self) -> None:
        """Continue a stopped or failed run from its newest checkpoint (a new trainer process)."""
        if self.state.state not in ("stopped", "failed"):
            self.notify(f"Only a stopped or failed run can be continued; this one is {self.state.state}.",
                        severity="warning")
            return
        try:
            services.resume_run(self.run_dir)
        except services.CockpitError as exc:
            self.notify(exc.one_line(), severity="error")
            return
        self.notify("Continuing from the last checkpoint; the charts pick up where they stopped.")

    def action_export(self) -> None:
        if self.state.state != "finished":
            self.notify("Export works on a finished run; this one is "
                        f"{self.state.state}.", severity="warning")
            return
        from screens.export import ExportScreen

        self.app.push_screen(ExportScreen(self.run_dir))

    def action_talk(self) -> None:
        """Chat with the run's model (beside its base): a finished or stopped run only."""
        if self.state.state not in ("finished", "stopped"):
            self.notify(f"Talking needs a finished or stopped run; this one is {self.state.state}.",
                        severity="warning")
            return
        self.app.open_chat(self.run_dir)
