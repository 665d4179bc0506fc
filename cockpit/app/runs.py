"""The one place where screens reach the engine.

Screens call these functions instead of importing engine modules directly, for two
reasons: the slow ones (anything that touches torch or a tokenizer) are imported here
lazily, inside the function, so the UI starts fast; and the engine's results are turned
into the small view types the screens draw (see :mod:`cockpit.app.wizard` for the
wizard's), so a change in the engine is one change here.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from cockpit.config import TrainConfig
from cockpit.errors import CockpitError
from cockpit.run.rundir import RunInfo
from cockpit.run.registry import DEFAULT_RUNS_ROOT, known_roots, list_all_runs
from cockpit.run.registry import run_spec as _run_spec

__all__ = ["CockpitError", "start_run", "stop_run", "resume_run", "list_runs", "runs_place",
           "export_command", "cli_command", "run_spec", "llama_runtime_missing", "runtime_required", "runtime_note"]


def start_run(cfg: TrainConfig) -> Path:
    """Create the run directory and spawn the detached trainer (``cockpit.run.launch``)."""
    from cockpit.run.launch import start_run as _start

    return _start(cfg)


def stop_run(run_dir: Path) -> None:
    """Graceful stop: SIGTERM to the trainer, which checkpoints and ends ``stopped``."""
    from cockpit.run.launch import stop_run as _stop

    _stop(run_dir)


def resume_run(run_dir: Path) -> None:
    """Continue a stopped or failed run from its newest checkpoint, detached."""
    from cockpit.run.launch import resume_run as _resume

    _resume(run_dir)


def list_runs(output_dir: str | Path | None) -> list[RunInfo]:
    """Every run under ``output_dir`` (None: of every runs directory llm-cockpit knows),
    newest first (what a person looks for first)."""
    return list(reversed(list_all_runs(output_dir)))


def runs_place(output_dir: str | Path | None) -> str:
    """Where :func:`list_runs` looks, in words for a title or a status line."""
    if output_dir is not None:
        return str(output_dir)
    roots = known_roots()
    if len(roots) == 1:
        return str(roots[0])
    return f"{len(roots)} runs directories" if roots else f"{DEFAULT_RUNS_ROOT} (none remembered elsewhere)"


def llama_runtime_missing() -> bool:
    """Whether llama.cpp's runtime (llama-cpp-python) is absent (looked up, not loaded)."""
    from cockpit.export import runtime

    return not runtime.installed()


def runtime_required(quant: str) -> bool:
    """Whether an export in ``quant`` cannot run at all without llama.cpp's runtime."""
    from cockpit.export import runtime

    return runtime.need_for(quant, True, library=False).quantizer_missing


def runtime_note(quant: str) -> str:
    """One line: what an export in ``quant`` loses without llama.cpp's runtime."""
    from cockpit.export import runtime

    return runtime.need_for(quant, True, library=False).short()


def cli_command(*args: str) -> list[str]:
    """The ``llm-cockpit`` command line run by this interpreter (works without the script on PATH)."""
    return [sys.executable, "-m", "cockpit.cli.main", *args]


def run_spec(run_dir: Path) -> str:
    """How to name a run on the command line: its name when that finds it, else its path
    (``attach``, ``resume`` and ``export`` accept both; :func:`cockpit.run.registry.run_spec`)."""
    return _run_spec(run_dir)


def export_command(run_dir: Path, target: str = "ollama", quant: str | None = None,
                   name: str | None = None, install_runtime: bool = False) -> str:
    """The export command a person would type for this run."""
    parts = ["llm-cockpit", "export", run_spec(run_dir), "--to", target]
    if quant:
        parts += ["--quant", quant]
    if name:
        parts += ["--name", name]
    if install_runtime:
        parts.append("--install-runtime")
    return shlex.join(parts)
