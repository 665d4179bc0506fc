"""The workshop's "watching training" checklist as detectors over the run's own telemetry.

Each detector reads numbers the trainer already has (losses, the memory of each step, the
GPU poll, how long each step waited for its batches) and returns ``warning`` events with the
checklist's advice (:data:`cockpit.training.advice.ADVICE`). Nothing here imports torch: the rules are
tested on synthetic telemetry, and :class:`cockpit.training.callbacks.EventCallback` feeds them.

Rules (each warns when its condition starts, and again only after it has cleared):

* ``loss_flat``: over the last :attr:`Checklist.flat_evals` evaluations (the eval loss, or,
  without an eval set, the mean train loss of each :attr:`Checklist.train_window` logged steps)
  the loss fell by less than ``flat_tol`` (1%), and the run as a whole has fallen by less than
  ``learned_tol`` (10%) from its first value: it is not learning. A run that learned and then
  levelled off has converged, and is not warned about.
* ``mem_high``: a device's memory in use (CUDA reserved, the NVML reading, or the process RSS on
  the CPU) is within ``mem_margin`` (5%) of its total.
* ``gpu_hot``: a GPU at ``hot_c`` (85 C) or above; cleared below ``hot_c - 5``.
* ``gpu_idle``: GPU utilization under ``idle_util`` (50%) in ``idle_polls`` (3) polls in a row
  while training; cleared by one poll at or above it.
* ``slow_io``: over ``io_window`` (20) steps, past the first ``io_warmup`` (5), waiting for
  batches took more than ``io_share`` (30%) of the step time. Steps with an evaluation, a
  checkpoint or sample answers in them are left out (their time is not the data's).

Preference stages (DPO, KTO: TRL's ``rewards/*`` numbers, in units of beta times the
log-probability ratio to the reference):

* ``pref_margin_high``: the reward margin above ``margin_max`` (5): beta or lr too high, the
  policy runs away from its reference;
* ``pref_stuck``: over the last ``pref_window`` (10) logged steps the reward accuracy stays
  within 0.1 of 0.5 and the mean margin under ``margin_tiny`` (0.05): chosen and rejected are
  indistinguishable to the model, or the reference is the policy itself;
* ``pref_chosen_falling``: across the window the chosen reward falls below ``-chosen_drop``
  (-0.5), and by at least ``chosen_share`` (half) of what the rejected one falls: the model
  lowers every answer, the good ones with the bad (common when the pairs differ in a few
  tokens). The rejected reward falling much faster than the chosen one is DPO working.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cockpit.run import events as ev
from cockpit.training.advice import ADVICE


@dataclass
class Checklist:
    """The detectors' state for one training session; each ``*`` method returns new warnings."""

    flat_evals: int = 3
    flat_tol: float = 0.01
    learned_tol: float = 0.10
    train_window: int = 10
    mem_margin: float = 0.05
    hot_c: float = 85.0
    idle_util: float = 50.0
    idle_polls: int = 3
    io_share: float = 0.30
    io_window: int = 20
    io_warmup: int = 5
    margin_max: float = 5.0
    margin_tiny: float = 0.05
    chosen_drop: float = 0.5
    chosen_share: float = 0.5
    pref_window: int = 10
    _active: set[str] = field(default_factory=set)
    _pref: list[tuple] = field(default_factory=list)
    _loss_points: list[float] = field(default_factory=list)
    _train_buffer: list[float] = field(default_factory=list)
    _idle_run: dict[int, int] = field(default_factory=dict)
    _io: deque = field(default_factory=deque)
    _io_steps_seen: int = 0

    # -- the rules -------------------------------------------------------------------
    def train_loss(self, step: int, loss: float, evaluated: bool) -> list[ev.Warning]:
        """A logged train loss. ``evaluated``: the run has an eval set (its losses decide instead)."""
        if evaluated or loss != loss:  # NaN is the NaN rule's
            return []
        self._train_buffer.append(loss)
        if len(self._train_buffer) < self.train_window:
            return []
        mean = sum(self._train_buffer) / len(self._train_buffer)
        self._train_buffer.clear()
        return self._loss_point(step, mean, f"mean train loss of each {self.train_window} logged steps")

    def eval_loss(self, step: int, loss: float) -> list[ev.Warning]:
        """An evaluation's loss."""
        if loss != loss:
            return []
        return self._loss_point(step, loss, "eval loss")

    def _loss_point(self, step: int, value: float, what: str) -> list[ev.Warning]:
        self._loss_points.append(value)
        points = self._loss_points
        if len(points) < self.flat_evals + 1:
            return []
        recent = points[-(self.flat_evals + 1):]
        fell = (recent[0] - min(recent[1:])) / max(abs(recent[0]), 1e-12)
        learned = (points[0] - min(points)) / max(abs(points[0]), 1e-12)
        flat = fell < self.flat_tol and learned < self.learned_tol
        trail = " -> ".join(f"{v:.3f}" for v in recent)
        return self._edge("loss_flat", flat, step,
                          f"loss flat: {what} {trail} (under {self.flat_tol:.0%} lower over the last "
                          f"{self.flat_evals} evaluations, {learned:.1%} below the first)")

    def memory(self, step: int, devices: Sequence[dict[str, Any]]) -> list[ev.Warning]:
        """A step's memory snapshot (:func:`cockpit.training.telemetry.memory_snapshot`)."""
        worst: tuple[float, str, int, int] | None = None
        for d in devices:
            total = int(d.get("total") or 0)
            used = int(d.get("reserved") or d.get("rss") or 0)
            if total <= 0 or used <= 0:
                continue
            share = used / total
            if worst is None or share > worst[0]:
                worst = (share, str(d.get("device", "?")), used, total)
        return self._memory_edge(step, worst)

    def gpu(self, step: int, gpus: Sequence[dict[str, Any]]) -> list[ev.Warning]:
        """An NVML poll (:meth:`cockpit.training.telemetry.GpuPoller.read`): heat, idleness, memory."""
        out: list[ev.Warning] = []
        temps = [(float(g["temp_c"]), g.get("index", 0)) for g in gpus if g.get("temp_c") is not None]
        hot = max(temps, default=None)
        hot_now = hot is not None and hot[0] >= self.hot_c
        still_hot = hot is not None and hot[0] >= self.hot_c - 5
        if hot_now or not still_hot:
            out += self._edge("gpu_hot", hot_now, step,
                              f"GPU {hot[1] if hot else '?'} at {hot[0] if hot else 0:.0f} C "
                              f"(the checklist says under {self.hot_c:.0f} C)")
        idle = []
        for g in gpus:
            index, util = int(g.get("index", 0)), g.get("util")
            if util is None:
                continue
            self._idle_run[index] = self._idle_run.get(index, 0) + 1 if util < self.idle_util else 0
            if self._idle_run[index] >= self.idle_polls:
                idle.append((index, util))
        if any(g.get("util") is not None for g in gpus):
            out += self._edge("gpu_idle", bool(idle), step,
                              f"GPU {idle[0][0] if idle else '?'} utilization {idle[0][1] if idle else 0:.0f}% "
                              f"in {self.idle_polls} readings in a row while training "
                              f"(a busy GPU runs at 90% or more)")
        used = [(int(g["mem_used"]) / int(g["mem_total"]), f"GPU {g.get('index', 0)}", int(g["mem_used"]),
                 int(g["mem_total"])) for g in gpus if g.get("mem_used") and g.get("mem_total")]
        if used:
            out += self._memory_edge(step, max(used))
        return out

    def step_time(self, step: int, data_s: float, step_s: float, busy: bool) -> list[ev.Warning]:
        """One optimizer step took ``step_s`` seconds, ``data_s`` of them waiting for batches.
        ``busy``: an evaluation, checkpoint or samples fell in this step (it is left out)."""
        self._io_steps_seen += 1
        if busy or step_s <= 0 or self._io_steps_seen <= self.io_warmup:
            return []
        self._io.append((data_s, step_s))
        if len(self._io) > self.io_window:
            self._io.popleft()
        if len(self._io) < self.io_window:
            return []
        data = sum(d for d, _ in self._io)
        total = sum(s for _, s in self._io)
        share = data / total
        if share <= self.io_share and "slow_io" not in self._active:
            return []
        return self._edge("slow_io", share > self.io_share, step,
                          f"waiting for data took {share:.0%} of the step time over the last "
                          f"{self.io_window} steps ({data / len(self._io):.2f} s of {total / len(self._io):.2f} s)")

    def preference(self, step: int, metrics: dict[str, float]) -> list[ev.Warning]:
        """A preference stage's logged numbers (``rewards/*``: :func:`cockpit.training.stages.stage_metrics`)."""
        margin, accuracy = metrics.get("rewards/margins"), metrics.get("rewards/accuracies")
        chosen, rejected = metrics.get("rewards/chosen"), metrics.get("rewards/rejected")
        if margin is None or margin != margin:
            return []
        self._pref.append((margin, accuracy, chosen, rejected))
        out = self._edge("pref_margin_high", abs(margin) > self.margin_max, step,
                         f"reward margin {margin:.1f} at step {step} (above {self.margin_max:g}): the model is "
                         "moving far from its reference")
        window = self._pref[-self.pref_window:]
        if len(self._pref) >= self.pref_window:
            accs = [a for _, a, _, _ in window if a is not None]
            mean_acc = sum(accs) / len(accs) if accs else None
            mean_margin = sum(m for m, _, _, _ in window) / len(window)
            stuck = mean_acc is not None and abs(mean_acc - 0.5) <= 0.1 and abs(mean_margin) < self.margin_tiny
            out += self._edge("pref_stuck", stuck, step,
                              f"reward accuracy {mean_acc if mean_acc is not None else 0:.2f} with margin "
                              f"{mean_margin:.3f} over the last {len(window)} logged steps: the model does not tell "
                              "chosen from rejected")
            first, last = window[0], window[-1]
            known = None not in (first[2], last[2], first[3], last[3])
            # the chosen reward falling at least half as fast as the rejected one: the model lowers
            # both, the good answers with the bad (a rejected reward falling much faster is DPO working)
            falling = (known and last[2] < first[2] and last[3] < first[3] and last[2] < -self.chosen_drop
                       and first[2] - last[2] >= self.chosen_share * (first[3] - last[3]))
            out += self._edge("pref_chosen_falling", falling, step,
                              f"the chosen answers' reward fell to {last[2] if last[2] is not None else 0:.2f} "
                              f"together with the rejected ones' ({last[3] if last[3] is not None else 0:.2f}) over "
                              f"the last {len(window)} logged steps")
        return out

    # -- edges -----------------------------------------------------------------------
    def _memory_edge(self, step: int, worst: tuple[float, str, int, int] | None) -> list[ev.Warning]:
        if worst is None:
            return []
        share, device, used, total = worst
        gib = 1024 ** 3
        return self._edge("mem_high", share >= 1 - self.mem_margin, step,
                          f"{device} memory {used / gib:.1f} of {total / gib:.1f} GiB in use ({share:.0%})")

    def _edge(self, kind: str, condition: bool, step: int, message: str) -> list[ev.Warning]:
        """A warning when ``condition`` starts; the kind re-arms once it has cleared."""
        if not condition:
            self._active.discard(kind)
            return []
        if kind in self._active:
            return []
        self._active.add(kind)
        return [ev.Warning(step=step, kind=kind, message=message, advice=ADVICE[kind])]
