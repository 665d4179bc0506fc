"""Sharing the CPU with the rest of the machine.

A CPU trainer runs one OpenMP thread per core, and every operator ends at a barrier where
the threads wait for each other. When another program wants a core, the kernel preempts
one trainer thread for a whole time slice (milliseconds) and its partner waits at the
barrier, spinning, for all of it, thousands of times a step: on a 2-core machine one
busy neighbour cut training from 98 to 14 tokens/s, far below the share of the CPU it
left. A trainer with one thread fewer than the cores the others leave never waits on a
preempted partner.

:class:`CpuShare` watches how much CPU the rest of the machine uses (``/proc/stat`` minus
this process's own time, every two seconds) and ``callbacks.ThreadShareCallback`` sets
the trainer's thread count at the next step boundary: all its threads when the machine is
idle, as many as the free cores when it is not. The cockpit's own helper commands (data
check, eval, export) take one thread while a trainer runs here (:func:`yield_to_trainer`).

Linux only (``/proc``); elsewhere nothing changes. ``OMP_NUM_THREADS`` set by the user,
or ``LLM_COCKPIT_CPU_SHARE=0``, keep the thread count fixed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

INTERVAL_S = 2.0
FIRST_SAMPLE_S = 0.5  # the first look comes early: a trainer may be ready to step a second after it starts
TRAINER_MODULE = "cockpit.training.trainer_main"
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (of /proc/stat's cpu line)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _machine_busy_ticks() -> int | None:
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()[1:]
    except OSError:
        return None
    return sum(int(fields[i]) for i in _BUSY_FIELDS if i < len(fields))


def _own_ticks() -> int | None:
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            after = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(after[11]) + int(after[12])  # utime, stime: fields 14 and 15, all threads


def threads_for(other_cores: float, cores: int, most: int) -> int:
    """How many threads to run when the rest of the machine keeps ``other_cores`` busy."""
    return max(1, min(most, round(cores - other_cores)))


class CpuShare:
    """Samples the CPU the rest of the machine uses; ``desired`` is the thread count to run."""

    def __init__(self, most: int, cores: int | None = None, interval: float = INTERVAL_S) -> None:
        self.most = max(1, most)
        self.cores = cores or usable_cores()
        self.interval = interval
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.desired = self.most
        self.other_cores = 0.0
        self._candidate = self.most
        self.samples = 0
        self._sampled = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return _machine_busy_ticks() is not None and _own_ticks() is not None

    def start(self) -> CpuShare:
        if self.available and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cpu-share", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def wait_first(self, timeout: float = 2 * FIRST_SAMPLE_S) -> None:
        """Block until the first sample is in (at most ``timeout``): the first step then
        starts with the right thread count."""
        if self._thread is not None:
            self._sampled.wait(timeout)

    def _run(self) -> None:
        last = (time.monotonic(), _machine_busy_ticks(), _own_ticks())
        wait = min(FIRST_SAMPLE_S, self.interval)
        while not self._stop.wait(wait):
            wait = self.interval
            now = (time.monotonic(), _machine_busy_ticks(), _own_ticks())
            if None in now or None in last:
                return
            self.observe(now[0] - last[0], now[1] - last[1], now[2] - last[2])  # type: ignore[operator]
            self._sampled.set()
            last = now

    def observe(self, seconds: float, machine_ticks: int, own_ticks: int) -> None:
        """Take one sample. The first decides at once (training should not begin on a busy
        machine with all its threads); later, the count changes after two samples agree."""
        if seconds <= 0:
            return
        self.other_cores = max(0.0, (machine_ticks - own_ticks) / self.hz / seconds)
        want = threads_for(self.other_cores, self.cores, self.most)
        if want == self._candidate or not self.samples:
            self.desired = want
        self._candidate = want
        self.samples += 1
        log.debug("cpu share: others use %.2f cores, %d threads wanted, %d set", self.other_cores, want, self.desired)


def threads_message(threads: int, other_cores: float, most: int) -> tuple[str, str]:
    """The warning (message, advice) a viewer shows when the trainer's thread count changes."""
    if threads < most:
        return (f"other programs keep {other_cores:.1f} of the CPU cores busy: training goes on with {threads} "
                f"thread{'s' if threads > 1 else ''} so none waits on a preempted partner",
                "training is slower while they run; all threads come back when they stop")
    return f"the CPU is free again: training with all {threads} threads", ""


def share_enabled() -> bool:
    """Adapting the thread count is on unless the user fixed it."""
    return "OMP_NUM_THREADS" not in os.environ and os.environ.get("LLM_COCKPIT_CPU_SHARE", "1") != "0"


def start_watching(device: str, world_size: int) -> CpuShare | None:
    """A started :class:`CpuShare` for a trainer on the CPU in one process (DDP ranks already
    run one thread each), unless the user fixed the thread count or /proc is not there."""
    if device != "cpu" or world_size > 1 or not share_enabled():
        return None
    import torch

    share = CpuShare(torch.get_num_threads()).start()
    return share if share.available else None


# ---------------------------------------------------------------- helper processes


def trainer_running(proc: Path = Path("/proc")) -> bool:
    """Whether a cockpit trainer process runs on this machine (other than this process)."""
    me = os.getpid()
    try:
        entries = list(proc.iterdir())
    except OSError:
        return False
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if TRAINER_MODULE.encode() in cmdline:
            return True
    return False


def yield_to_trainer() -> bool:
    """In a helper command (data check, eval, export): one thread while a trainer runs here,
    so the training keeps its cores. Returns True when it yielded."""
    if "OMP_NUM_THREADS" in os.environ or not trainer_running():
        return False
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[name] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    return True
