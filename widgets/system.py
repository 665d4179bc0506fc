"""Run progress and the machine's side of a run: throughput, ETA, memory, GPU health.

:class:`RunProgress` is the one-line progress bar with step, epoch, speed and ETA; while
the trainer is busy outside the training loop (loading the model, the base model's
answers, ...) it says so instead, with a clock that ticks every second.
:class:`SystemPanel` shows memory per device (allocated, reserved and peak against the
total) and each GPU's utilisation, temperature and power, flagging what the workshop
calls unhealthy: a GPU under 50% busy, hotter than 85 C, memory above 90%.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.widget import Widget

from cockpit.run.follow import RunState, fmt_bytes, fmt_duration, num, phase_clock
from widgets import load_css
from widgets.meters import gauge

HOT_C = 85
BUSY_UTIL = 50
MEM_HIGH = 0.9
STATE_CLASSES = {"running": "ok", "starting": "muted", "finished": "ok", "stopped": "warn", "failed": "bad"}


class RunProgress(Widget):
    """``████░░░░ 42%  step 50/120  epoch 1.3  1,234 tok/s  eta 3m12s``, or during a phase
    ``STARTING ░░░░░░░░░░ Loading the model SmolLM2-135M-Instruct (fp32, CPU)… 12s``.

    ``clock`` gives the time the phase clock counts to (default: the app's ``now`` when it
    has one, so tests with a fixed clock draw the same screen every time).
    """

    DEFAULT_CSS = load_css("system.tcss")
    COMPONENT_CLASSES = {"progress--done", "progress--todo", "progress--ok", "progress--muted",
                         "progress--warn", "progress--bad", "progress--phase"}

    def __init__(self, *, id: str | None = None, classes: str | None = None, clock=None) -> None:
        super().__init__(id=id, classes=classes)
        self.state: RunState | None = None
        self.clock = clock

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if self.state is not None and self.state.current_phase is not None:
            self.refresh()  # the phase's seconds go on while no event comes

    def _now(self) -> float:
        return (self.clock or getattr(self.app, "now", None) or time.time)()

    def show(self, state: RunState) -> None:
        self.state = state
        self.refresh()

    def render(self) -> Text:
        s = self.state
        width = self.content_size.width
        if s is None:
            return Text("reading the run…", style=self.get_component_rich_style("progress--muted"))
        state_style = self.get_component_rich_style(f"progress--{STATE_CLASSES.get(s.state, 'muted')}")
        if s.current_phase is not None:
            return self._render_phase(s, state_style)
        steps = f"step {s.step}/{s.total_steps}" if s.total_steps else f"step {s.step}"
        parts = [f"{s.progress * 100:3.0f}%", steps, f"epoch {s.epoch:.2f}"]
        if s.tokens_per_s is not None:
            parts.append(f"{s.tokens_per_s:,.0f} tok/s")
        parts.append(f"elapsed {fmt_duration(s.elapsed_s)}")
        if s.state in ("running", "starting"):
            parts.append(f"eta {fmt_duration(s.eta_s)}")
        info = "  ".join(parts)
        bar_w = max(10, min(40, width - len(info) - len(s.state) - 4))
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(s.state.upper(), state_style)
        text.append(" ")
        text.append_text(gauge(s.progress, bar_w, self.get_component_rich_style("progress--done"),
                               self.get_component_rich_style("progress--todo")))
        text.append(" " + info)
        return text

    def _render_phase(self, s: RunState, state_style) -> Text:
        """The state, the step once there is one (else a short bar of the phase's share when the
        trainer knows it), and what the trainer is doing with its time. A long sentence is
        shortened, never the clock: the seconds going on are what says it is alive."""
        phase = s.current_phase
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(s.state.upper(), state_style)
        if s.step:
            text.append(f" step {s.step}/{s.total_steps} " if s.total_steps else f" step {s.step} ")
        elif phase.progress is not None:
            text.append(" ")
            text.append_text(gauge(phase.progress, 10, self.get_component_rich_style("progress--done"),
                                   self.get_component_rich_style("progress--todo")))
        clock = phase_clock(phase, self._now())
        room = self.content_size.width - text.cell_len - 2 - (len(clock) + 1 if clock else 0)
        message = phase.message if len(phase.message) <= room else phase.message[: max(8, room - 1)].rstrip()
        text.append(f" {message}…" + (f" {clock}" if clock else ""), self.get_component_rich_style("progress--phase"))
        return text


class SystemPanel(Widget, can_focus=False):
    """Memory per device and GPU telemetry, from the latest ``step`` and ``gpu`` events."""

    DEFAULT_CSS = load_css("system.tcss")
    COMPONENT_CLASSES = {"system--label", "system--bar", "system--free", "system--hot", "system--muted"}

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.mem: list = []
        self.gpus: list = []

    def show(self, state: RunState) -> None:
        if (state.mem, state.gpus) != (self.mem, self.gpus):
            rows = (len(self.mem), len(self.gpus))
            self.mem, self.gpus = state.mem, state.gpus
            self.refresh(layout=rows != (len(self.mem), len(self.gpus)))

    def get_content_height(self, container, viewport, width: int) -> int:  # noqa: ANN001 - Textual's signature
        return max(1, len(self._lines(width)))

    def render(self) -> Text:
        return Text("\n").join(self._lines(self.content_size.width))

    def _lines(self, width: int) -> list[Text]:
        muted = self.get_component_rich_style("system--muted")
        lines = [self._mem_line(i, d, width) for i, d in enumerate(self.mem) if isinstance(d, dict)]
        lines += [self._gpu_line(i, d, width) for i, d in enumerate(self.gpus) if isinstance(d, dict)]
        if not lines:
            lines = [Text("no memory readings yet", style=muted)]
        return lines

    def _mem_line(self, index: int, d: dict, width: int) -> Text:
        label = str(d.get("device") or f"dev{index}")[:7].ljust(7)
        line = Text(label + " ", self.get_component_rich_style("system--label"), no_wrap=True, overflow="ellipsis")
        total = num(d.get("total"))
        rss = num(d.get("rss"))
        if rss is not None:  # a CPU process: resident memory against the machine's RAM
            peak = num(d.get("peak"))
            used, detail = rss, f" RSS {fmt_bytes(rss)}" + (f" · peak {fmt_bytes(peak)}" if peak else "")
            detail += f" / {fmt_bytes(total)} RAM" if total else ""
        elif total:
            alloc, reserved, peak = num(d.get("allocated")), num(d.get("reserved")), num(d.get("peak"))
            used = max(reserved or 0.0, alloc or 0.0)
            detail = (f" {fmt_bytes(alloc).replace(' GiB', '')} alloc · {fmt_bytes(reserved).replace(' GiB', '')}"
                      f" res · {fmt_bytes(peak).replace(' GiB', '')} peak / {fmt_bytes(total)}")
        else:
            line.append("no memory reading", self.get_component_rich_style("system--muted"))
            return line
        if not total:
            line.append(detail.strip())
            return line
        high = used / total >= MEM_HIGH
        bar_w = max(6, min(24, width - len(label) - len(detail) - 2))
        bar_style = self.get_component_rich_style("system--hot" if high else "system--bar")
        line.append_text(gauge(used / total, bar_w, bar_style, self.get_component_rich_style("system--free")))
        line.append(detail)
        return line

    def _gpu_line(self, index: int, d: dict, width: int) -> Text:
        label = f"gpu{d.get('index', index)}"[:7].ljust(7)
        line = Text(label + " ", self.get_component_rich_style("system--label"), no_wrap=True, overflow="ellipsis")
        util, temp, power = num(d.get("util")), num(d.get("temp_c")), num(d.get("power_w"))
        busy_style = "system--bar" if util is None or util >= BUSY_UTIL else "system--hot"
        line.append_text(gauge((util or 0) / 100, 10, self.get_component_rich_style(busy_style),
                               self.get_component_rich_style("system--free")))
        line.append(f" {util:3.0f}% busy" if util is not None else " util ?")
        used, total = num(d.get("mem_used")), num(d.get("mem_total"))
        if total:
            line.append(f"  {fmt_bytes(used)}/{fmt_bytes(total)}")
        if temp is not None:
            line.append(f"  {temp:.0f}°C", self.get_component_rich_style("system--hot") if temp > HOT_C else None)
        if power is not None:
            line.append(f"  {power:.0f} W")
        return line
