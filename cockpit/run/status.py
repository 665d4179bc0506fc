"""The status of a run: two files, each with exactly one writer.

``status.json`` belongs to the trainer (rank 0): its state, step, losses, its own pid.
``launch.json`` belongs to whoever starts the trainer (the CLI, the TUI, a resume): the
pid of the process it spawned, the process layout to relaunch with, and a ``session``
number it raises on every (re)start. A file is only ever rewritten by its owner (atomically,
so no reader sees half of one), so a launcher writing a pid while the trainer writes a step
can lose neither: there is no read-merge-replace of someone else's fields.

Readers call :func:`read_status` (the two merged) or :func:`effective_status` (merged,
with a dead trainer reported as ``failed``). The trainer's status counts once it has
written for the launcher's current session; until then a fresh
(re)start shows the launcher's ``starting`` and its pid, never the previous session's
``failed``/``stopped``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cockpit.run.atomic import atomic_write_json, read_json_object

STATUS_FILE = "status.json"
LAUNCH_FILE = "launch.json"
ACTIVE_STATES = ("starting", "running")
FINAL_STATES = ("finished", "failed", "stopped")

_LAUNCH_WINS = ("state", "pid", "error", "advice")
"""What a launcher's newer session says over a trainer's status of an older session."""


def _session(data: dict[str, Any]) -> int:
    try:
        return int(data.get("session") or 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def read_trainer_status(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``status.json`` alone, as the trainer last wrote it (empty when missing or unreadable)."""
    return read_json_object(Path(run_dir) / STATUS_FILE)


def read_launch(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``launch.json`` alone (empty when missing or unreadable: a run of an older cockpit)."""
    return read_json_object(Path(run_dir) / LAUNCH_FILE)


def write_status(run_dir: str | os.PathLike[str], **fields: Any) -> dict[str, Any]:
    """The trainer's write: merge ``fields`` into ``status.json`` and replace it atomically.

    Only the trainer process calls this (one writer, so the read-merge-replace loses nothing);
    returns the new trainer status."""
    run_dir = Path(run_dir)
    status = read_trainer_status(run_dir)
    status.update(fields)
    # the trainer runs for the launcher's newest session: from its first write on, its
    # status (not the launcher's ``starting``) is the run's
    status["session"] = max(_session(status), _session(read_launch(run_dir)))
    status["updated"] = time.time()
    atomic_write_json(run_dir / STATUS_FILE, status)
    return status


def write_launch(run_dir: str | os.PathLike[str], new_session: bool = False, **fields: Any) -> dict[str, Any]:
    """The launcher's write: merge ``fields`` into ``launch.json``.

    ``new_session`` marks a (re)start: the session number goes up and the run reads as
    ``starting`` (no error, no advice) until the trainer adopts it."""
    run_dir = Path(run_dir)
    launch = read_launch(run_dir)
    if new_session:
        launch.update(session=_session(launch) + 1, state="starting", error=None, advice=None,
                      requested=time.time())
    launch.update(fields)
    launch["updated"] = time.time()
    atomic_write_json(run_dir / LAUNCH_FILE, launch)
    return launch


def merge_status(launch: dict[str, Any], trainer: dict[str, Any]) -> dict[str, Any]:
    """What a reader sees: the launcher's fields under the trainer's, except while the
    trainer has not yet taken up the launcher's newest session."""
    merged = {k: v for k, v in launch.items() if k not in ("session", "requested")}
    merged.update(trainer)
    if launch and _session(trainer) < _session(launch):
        merged.update({k: launch.get(k) for k in _LAUNCH_WINS})
    if isinstance(launch.get("updated"), (int, float)) and isinstance(trainer.get("updated"), (int, float)):
        merged["updated"] = max(launch["updated"], trainer["updated"])
    return merged


def read_status(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's status as every reader sees it (the two files merged; empty when neither exists)."""
    return merge_status(read_launch(run_dir), read_trainer_status(run_dir))


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a run's status (from its launcher or its trainer)."""
    path = Path(path)
    return (path / STATUS_FILE).exists() or (path / LAUNCH_FILE).exists()


def pid_alive(pid: Any) -> bool:
    """Whether a process with this pid exists (zombies count as dead)."""
    try:
        pid = int(pid)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        return False
    if pid <= 0 or pid > 2**31 - 1:  # os.kill takes a C int (a corrupt status file may hold more)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (finished, not yet reaped) is not a running trainer
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def effective_status(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The merged status with the truth about dead trainers: an active state whose pid is
    gone is reported as ``failed`` (killed, crashed or the machine rebooted)."""
    status = read_status(run_dir)
    if not status:
        return {"state": "unknown", "error": "no status.json (not a run directory, or it never started)"}
    if status.get("state") in ACTIVE_STATES and not pid_alive(status.get("pid")):
        status["state"] = "failed"
        status["error"] = status.get("error") or "the trainer process ended without finishing (killed or crashed)"
        status["advice"] = f"continue it with: llm-cockpit resume {Path(run_dir).name}"
    return status


__all__ = ["STATUS_FILE", "LAUNCH_FILE", "ACTIVE_STATES", "FINAL_STATES", "write_status",
           "write_launch", "read_status", "read_launch", "read_trainer_status", "merge_status",
           "effective_status", "is_run_dir", "pid_alive"]
