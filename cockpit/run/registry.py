"""Where runs live: the runs roots a user has trained in, and finding runs in all of them.

A *runs root* holds run directories (``<root>/<YYYY-mm-dd_HH-MM-SS>[-name]/`` and the
``<root>/latest`` link). New runs go to :data:`DEFAULT_RUNS_ROOT` (``outputs/runs`` under
the directory ``train`` is typed in) unless ``output_dir=`` says otherwise. Every root a
run is created in is remembered in ``runs_roots.json`` in the user's state directory
(:func:`cockpit.paths.state_dir`: ``$LLM_COCKPIT_HOME``, else
``$XDG_STATE_HOME/llm-cockpit``, else ``~/.local/state/llm-cockpit``), so ``runs``,
``attach``, ``stop``, ``resume``, ``eval``, ``export`` and the cockpit's runs list find a
run from any directory, for instance after an SSH reconnect that lands in ``~``.

Which roots a command looks in (:func:`known_roots`):

* an explicit root (``--output-dir DIR``) means that root only, as it always did;
* otherwise the current directory's ``outputs/runs`` (when it exists) first, then every
  registered root that still exists (one that was deleted is skipped, and dropped from
  the registry the next time a run is registered).

What ``latest`` (or no run at all) means without ``--output-dir``: the current directory's
``outputs/runs/latest`` when there is one (a user inside a project means that project's
newest run, exactly as before), else the newest run of every known root (the one started
last, anywhere). A run name or unique prefix is looked up in every known root; a name
found in several is an error that lists the candidates.

The registry tolerates anything: a missing, empty or corrupt file reads as no roots, and
the next registration rewrites it (atomically, under a lock, so two trainers starting at
once both end up in it). A registry that cannot be written (read-only home) never stops a
run: the run is still in its root, only not remembered.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from pathlib import Path

from cockpit.errors import CockpitError
from cockpit.paths import state_dir
from cockpit.run.rundir import LATEST, RunInfo, as_run_path, list_runs, matching_runs, resolve_run
from cockpit.run.atomic import atomic_write_json

log = logging.getLogger(__name__)

DEFAULT_RUNS_ROOT = "outputs/runs"
"""Where runs go unless ``output_dir=`` says otherwise: relative to the current directory."""
REGISTRY_FILE = "runs_roots.json"
_VERSION = 1


def default_root() -> Path:
    """The current directory's default runs root (``./outputs/runs``), absolute."""
    return Path(os.path.abspath(DEFAULT_RUNS_ROOT))


def registry_path() -> Path:
    """The file that remembers the runs roots (``<state dir>/runs_roots.json``)."""
    return state_dir() / REGISTRY_FILE


def registered_roots() -> list[Path]:
    """Every root in the registry, oldest registration first, whether it still exists or not.
    A missing or unreadable registry holds none."""
    try:
        data = json.loads(registry_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    roots = data.get("roots") if isinstance(data, dict) else None
    if not isinstance(roots, list):
        return []
    out: list[Path] = []
    for item in roots:
        # only absolute paths count: a relative one would mean something else in every directory
        if isinstance(item, str) and os.path.isabs(item) and Path(item) not in out:
            out.append(Path(item))
    return out


@contextlib.contextmanager
def _locked(path: Path):
    """Serialize read-modify-write of the registry between processes."""
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def register_root(root: str | os.PathLike[str]) -> bool:
    """Remember ``root`` (stored resolved; once however often it is registered) and forget
    registered roots that no longer exist. Returns False when the registry cannot be
    written; the caller goes on (the run exists, it is only not remembered)."""
    root = Path(root).expanduser().resolve()
    path = registry_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            roots = [r for r in registered_roots() if r != root and r.is_dir()]
            roots.append(root)
            atomic_write_json(path, {"version": _VERSION, "roots": [str(r) for r in roots]})
    except OSError as exc:
        log.warning("could not remember the runs directory %s in %s (%s); runs there are found "
                    "from that directory or with --output-dir", root, path, exc.strerror or exc)
        return False
    return True


def known_roots(output_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The roots a command looks in: ``output_dir`` alone when given, else the current
    directory's ``outputs/runs`` (if it exists) and every registered root that exists,
    each once, resolved."""
    if output_dir is not None:
        return [Path(output_dir).expanduser()]
    here = default_root()
    candidates = ([here] if here.is_dir() else []) + registered_roots()
    roots: list[Path] = []
    for candidate in candidates:
        if candidate.is_dir() and candidate.resolve() not in roots:
            roots.append(candidate.resolve())
    return roots


def list_all_runs(output_dir: str | os.PathLike[str] | None = None) -> list[RunInfo]:
    """Every run of every known root (:func:`known_roots`), oldest first. A run's root is
    ``info.path.parent``."""
    runs = [info for root in known_roots(output_dir) for info in list_runs(root)]
    # run names start with their creation time, so names sort runs of all roots by age
    return sorted(runs, key=lambda info: (info.name, str(info.path)))


def _where(roots: list[Path]) -> str:
    if len(roots) == 1:
        return f"under {roots[0]}"
    if not roots:
        return f"under {DEFAULT_RUNS_ROOT} here, and no other runs directory is remembered"
    return f"in any of the {len(roots)} runs directories llm-cockpit knows"


def find_run(spec: str | None, output_dir: str | os.PathLike[str] | None = None) -> Path:
    """The run directory a user means (resolved): nothing or ``latest``, a run name or a
    unique prefix of one, or a path. With ``output_dir`` only that root is searched
    (:func:`cockpit.run.rundir.resolve_run`); without it every known root is (module docstring)."""
    if output_dir is not None:
        return resolve_run(spec, output_dir)
    if spec in (None, "", LATEST):
        here = default_root() / LATEST
        if here.exists():
            return here.resolve()
        runs = list_all_runs()
        if runs:
            return runs[-1].path.resolve()
        raise CockpitError(f"no runs yet {_where(known_roots())}", "start one with: llm-cockpit train")
    path = as_run_path(spec)
    if path is not None:
        return path
    roots = known_roots()
    matches = [p for root in roots for p in matching_runs(root, spec)]
    if any(p.name == spec for p in matches):  # an exact name wins over longer names it prefixes
        matches = [p for p in matches if p.name == spec]
    if len(matches) == 1:
        return matches[0].resolve()
    if matches:
        several_roots = len({p.parent for p in matches}) > 1
        shown = ", ".join(str(p) if several_roots else p.name for p in matches[:5])
        more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
        raise CockpitError(f"run {spec!r} is ambiguous: {shown}{more}",
                           "type more of the name, or give the run's path")
    raise CockpitError(f"no run named {spec!r} {_where(roots)}", "list runs with: llm-cockpit runs")


def run_spec(run_dir: str | os.PathLike[str]) -> str:
    """How to name a run on the command line: its name when the name finds this very run
    (its root is here or remembered, and no other known run has that name), else its path
    as given."""
    given = Path(run_dir)
    try:
        if find_run(given.name) == given.resolve():
            return given.name
    except CockpitError:
        pass
    return str(given)
