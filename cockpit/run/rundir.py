"""Run directories: creation, atomic status files, the ``latest`` link, listing.

Layout (DESIGN.md section 3)::

    <output_dir>/<YYYY-mm-dd_HH-MM-SS>[-name]/
        config_used.yaml  status.json  launch.json  events.jsonl  train.log
        checkpoints/  model/  logs/  eval.json  export/
    <output_dir>/latest -> the newest run

Every file a reader polls (``status.json``, ``latest``) is replaced atomically
(:mod:`cockpit.run.atomic`), so a reader sees the old version or the new one, never half
of one; :mod:`cockpit.run.status` owns the two status files and their writers.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cockpit.errors import CockpitError
from cockpit.run.atomic import atomic_symlink
from cockpit.run.status import effective_status, is_run_dir

EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config_used.yaml"
LOG_FILE = "train.log"
MODEL_DIR = "model"
"""The run's result: its LoRA adapter (or full weights) and tokenizer."""
EXPORT_DIR = "export"
LATEST = "latest"

RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""What a run name may be (config.run_name checks it too): it becomes part of a directory name."""


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
    if name is not None and not RUN_NAME_RE.match(name):
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
    dirs = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and is_run_dir(p)]
    return [run_info(p) for p in sorted(dirs, key=lambda p: p.name)]


def as_run_path(spec: str, hint: str = "list runs with: llm-cockpit runs") -> Path | None:
    """``spec`` as the path of a run directory (resolved), or None when it names no directory.

    A directory that is not a run is an error (``hint`` says where to look instead)."""
    path = Path(spec).expanduser()
    if not path.is_dir():
        return None
    if not is_run_dir(path) and not (path / CONFIG_FILE).exists():
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
