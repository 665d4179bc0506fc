"""Run directories: creation, atomic status files, the ``latest`` link, listing.

Layout (DESIGN.md section 3)::

    <output_dir>/<YYYY-mm-dd_HH-MM-SS>[-name]/
        config_used.yaml  status.json  events.jsonl  train.log
        checkpoints/  model/  logs/  eval.json  export/
    <output_dir>/latest -> the newest run

Every file a reader polls (``status.json``, ``latest``) is replaced atomically
(write a temporary file beside it, then ``os.replace``), so a reader sees the old
version or the new one, never half of one.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.errors import CockpitError

STATUS_FILE = "status.json"
EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config_used.yaml"
LOG_FILE = "train.log"
MODEL_DIR = "model"
"""The run's result: its LoRA adapter (or full weights) and tokenizer."""
EXPORT_DIR = "export"
LATEST = "latest"
ACTIVE_STATES = ("starting", "running")
FINAL_STATES = ("finished", "failed", "stopped")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """JSON variant of :func:`atomic_write_text` (indented, UTF-8)."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    # a lone surrogate (an error naming a non-UTF-8 file) can only be inside a JSON string:
    # written as the JSON escape \udXXX it reads back as it was
    atomic_write_text(path, text.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")


def atomic_symlink(target: str | os.PathLike[str], link: str | os.PathLike[str]) -> None:
    """Point ``link`` at ``target`` atomically (new link beside it, then rename over)."""
    link = Path(link)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    os.replace(tmp, link)


def ensure_runs_root(root: Path) -> None:
    """The runs directory exists (created if needed) and this user can write in it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CockpitError(f"cannot create the runs directory {root}: {exc.strerror}",
                           "choose another output_dir=... or fix its permissions") from exc
    if not os.access(root, os.W_OK):
        raise CockpitError(f"the runs directory {root} is not writable",
                           "choose another output_dir=... or fix its permissions")


def create_run_dir(output_dir: str | os.PathLike[str], name: str | None = None) -> Path:
    """Make a new timestamped run directory under ``output_dir`` and point ``latest`` at it."""
    root = Path(output_dir)
    if name is not None and not _NAME_RE.match(name):
        raise CockpitError(
            f"run name {name!r} is not allowed",
            "use letters, digits, '.', '_' or '-' (at most 64 characters)",
        )
    ensure_runs_root(root)
    stamp = _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    base = f"{stamp}-{name}" if name else stamp
    for i in range(1, 1000):
        candidate = root / (base if i == 1 else f"{base}.{i}")
        try:
            candidate.mkdir()
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - a thousand runs in one second
        raise CockpitError(f"could not create a run directory under {root}")
    for sub in ("checkpoints", "logs"):
        (candidate / sub).mkdir()
    atomic_symlink(candidate.name, root / LATEST)
    return candidate


def write_status(run_dir: str | os.PathLike[str], **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``status.json`` and replace it atomically; returns the new status."""
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    status.update(fields)
    status["updated"] = _dt.datetime.now().timestamp()
    atomic_write_json(run_dir / STATUS_FILE, status)
    return status


def read_status(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw ``status.json`` (empty dict when missing or unreadable)."""
    try:
        data = json.loads((Path(run_dir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def pid_alive(pid: Any) -> bool:
    """Whether a process with this pid exists (zombies count as dead)."""
    try:
        pid = int(pid)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        return False
    if pid <= 0 or pid > 2**31 - 1:  # os.kill takes a C int (a corrupt status.json may hold more)
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
    """``status.json`` with the truth about dead trainers: an active state whose pid is
    gone is reported as ``failed`` (killed, crashed or the machine rebooted)."""
    status = read_status(run_dir)
    if not status:
        return {"state": "unknown", "error": "no status.json (not a run directory, or it never started)"}
    if status.get("state") in ACTIVE_STATES and not pid_alive(status.get("pid")):
        status = dict(status)
        status["state"] = "failed"
        status.setdefault("error", None)
        status["error"] = status["error"] or "the trainer process ended without finishing (killed or crashed)"
        status["advice"] = f"continue it with: llm-cockpit resume {Path(run_dir).name}"
    return status


@dataclass
class RunInfo:
    """One row of ``llm-cockpit runs``."""

    path: Path
    state: str
    model: str
    method: str
    step: int
    total_steps: int
    best_loss: float | None
    last_loss: float | None
    started: float | None

    @property
    def name(self) -> str:
        return self.path.name


def run_info(run_dir: Path) -> RunInfo:
    """Summarise a run from its status file (cheap: never parses the whole event log)."""
    status = effective_status(run_dir)
    return RunInfo(
        path=run_dir,
        state=str(status.get("state", "unknown")),
        model=str(status.get("model", "?")),
        method=str(status.get("method", "?")),
        step=int(status.get("step") or 0),
        total_steps=int(status.get("total_steps") or 0),
        best_loss=status.get("best_loss"),
        last_loss=status.get("loss"),
        started=status.get("started"),
    )


def list_runs(output_dir: str | os.PathLike[str]) -> list[RunInfo]:
    """Every run under ``output_dir``, oldest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    dirs = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and (p / STATUS_FILE).exists()]
    return [run_info(p) for p in sorted(dirs, key=lambda p: p.name)]


def as_run_path(spec: str, hint: str = "list runs with: llm-cockpit runs") -> Path | None:
    """``spec`` as the path of a run directory (resolved), or None when it names no directory.

    A directory that is not a run is an error (``hint`` says where to look instead)."""
    path = Path(spec).expanduser()
    if not path.is_dir():
        return None
    if not (path / STATUS_FILE).exists() and not (path / CONFIG_FILE).exists():
        raise CockpitError(f"{path} is not a run directory (no status.json)", hint)
    return path.resolve()


def matching_runs(root: str | os.PathLike[str], spec: str) -> list[Path]:
    """The run directories under ``root`` named ``spec``, else those whose name starts with it
    (an exact name wins, so a run is never ambiguous with its own ``.2`` sibling)."""
    root = Path(root)
    if not root.is_dir():
        return []
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and p.name.startswith(spec))
    return [p for p in dirs if p.name == spec] or dirs


def resolve_run(spec: str | None, output_dir: str | os.PathLike[str]) -> Path:
    """Find a run from what a user typed: nothing or ``latest``, a run name (or a unique
    prefix of one) under ``output_dir`` only, or a path. Every root at once:
    :func:`cockpit.run.registry.find_run`."""
    root = Path(output_dir)
    if spec in (None, "", LATEST):
        link = root / LATEST
        if link.exists():
            return link.resolve()
        raise CockpitError(f"no runs yet under {root}", "start one with: llm-cockpit train")
    path = as_run_path(spec, f"list runs with: llm-cockpit runs --output-dir {root}")
    if path is not None:
        return path
    matches = matching_runs(root, spec)
    if len(matches) == 1:
        return matches[0].resolve()
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches[:5])
        raise CockpitError(f"run {spec!r} is ambiguous: {names}", "type more of the name")
    raise CockpitError(f"no run named {spec!r} under {root}", "list runs with: llm-cockpit runs")
