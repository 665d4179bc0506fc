"""Running one child process and measuring it: wall time, peak RSS, CPU time, exit code.

Every variant runs in its own process so that its peak memory is its own: the kernel
keeps each process's high-water mark of resident memory, and ``os.wait4`` hands it to
the parent when the child is reaped (``ru_maxrss``, KiB on Linux). Polling RSS from
outside could miss a short peak; this cannot. Every wait has a timeout, after which the
child's whole process group is killed, so one hung variant never stalls the benchmark.

One catch: Linux carries the parent's high-water mark into a child across fork/vfork
and exec, so ``ru_maxrss`` never reads below the harness's own RSS at launch. The
harness therefore never imports torch or transformers itself (versions come from
package metadata, the rest from :func:`probe` in a child), which keeps that floor at a
few tens of MiB; a small process such as the dashboard is read from its own
``VmHWM`` instead (:func:`vm_hwm_mib`).
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench.settings import REPO


@dataclass
class ProcessResult:
    """How a child process ended and what it cost."""

    returncode: int | None
    wall_s: float
    peak_rss_mib: float | None
    cpu_s: float | None
    timed_out: bool = False

    def to_dict(self) -> dict:
        return {"returncode": self.returncode, "wall_s": round(self.wall_s, 3),
                "peak_rss_mib": None if self.peak_rss_mib is None else round(self.peak_rss_mib, 1),
                "cpu_s": None if self.cpu_s is None else round(self.cpu_s, 2), "timed_out": self.timed_out}


def spawn(argv: list[str], *, log_dir: Path, name: str, env: dict | None = None, **popen) -> subprocess.Popen:
    """Start ``argv`` in its own session (so it can be killed as a group), output to log files."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out = open(log_dir / f"{name}.stdout", "wb")  # noqa: SIM115 - the child owns them; closed below
    err = open(log_dir / f"{name}.stderr", "wb")  # noqa: SIM115
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=REPO,
                                env=env if env is not None else os.environ.copy(), start_new_session=True,
                                **popen)
    finally:
        out.close()
        err.close()


def wait_measured(proc: subprocess.Popen, started: float, timeout: float) -> ProcessResult:
    """Reap ``proc`` with ``os.wait4`` (peak RSS and CPU time); kill its group after ``timeout``."""
    deadline = started + timeout
    timed_out = False
    while True:
        try:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:  # someone else reaped it: the time is known, the usage is lost
            return ProcessResult(proc.returncode, time.monotonic() - started, None, None, timed_out)
        if pid == proc.pid:
            break
        if time.monotonic() > deadline and not timed_out:
            timed_out = True
            kill_group(proc.pid)
            deadline = time.monotonic() + 10
        elif timed_out and time.monotonic() > deadline:
            return ProcessResult(None, time.monotonic() - started, None, None, timed_out=True)
        time.sleep(0.05)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen so it never waits again
    return ProcessResult(proc.returncode, wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, timed_out)


def run_measured(argv: list[str], *, log_dir: Path, name: str, timeout: float) -> ProcessResult:
    """Run ``argv`` to its end (or its timeout) and measure it."""
    started = time.monotonic()
    return wait_measured(spawn(argv, log_dir=log_dir, name=name), started, timeout)


def has_exited(pid: int) -> bool:
    """Whether the child has ended, without reaping it (its usage is still to be collected)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal the process group the child leads (it was started in its own session)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tail(path: Path, lines: int = 3) -> str:
    """The last lines of a log: what goes into a failed variant's error line."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def vm_hwm_mib(pid: int) -> float | None:
    """The peak RSS of a live process's current memory map (since its exec), from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


_PROBE = """
import json, torch
from cockpit.models.sources import resolve_model
print(json.dumps({"model_path": str(resolve_model(%r).path), "torch_threads": torch.get_num_threads(),
                  "cuda": torch.cuda.is_available(),
                  "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}))
"""


def probe(model_id: str, timeout: float = 600) -> dict:
    """In a child process: the local path of ``model_id`` (materialized on first use) and
    what torch sees (threads, GPUs), so the harness itself never loads torch."""
    import json

    out = subprocess.run([sys.executable, "-c", _PROBE % model_id], check=False, cwd=REPO, capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"cannot locate {model_id}: {' '.join(out.stderr.strip().splitlines()[-2:])}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine_info() -> dict:
    """What the numbers depend on: cores, libraries, threads setting, the commit measured."""
    from importlib.metadata import PackageNotFoundError, version

    def pkg(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "cpu_count": os.cpu_count(), "affinity_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(), "platform": platform.platform(), "python": sys.version.split()[0],
        "torch": pkg("torch"), "transformers": pkg("transformers"), "peft": pkg("peft"), "textual": pkg("textual"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "mem_total_gib": _mem_total_gib(),
        "git_commit": _git("rev-parse", "HEAD"), "git_dirty": bool(_git("status", "--porcelain")),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _mem_total_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], check=False, cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
