"""Runs, as every front end starts, stops, resumes and lists them.

The CLI, the screens and the plain wizard call these functions instead of the engine's
launch and foreground modules, for two reasons: the slow ones (anything that touches
torch or a tokenizer) are imported here lazily, inside the function, so the UI starts
fast; and the engine's results are turned
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

__all__ = ["CockpitError", "check_layout", "create_run", "trains_here", "launch", "train_here", "start_run", "stop_run",
           "resume_layout", "resume_run", "list_runs", "runs_place",
           "export_command", "cli_command", "run_spec", "llama_runtime_missing", "runtime_required", "runtime_note"]


def check_layout(num_processes: int = 1, accelerate_config: str | None = None) -> None:
    """The process layout is possible (a count >= 1, an accelerate config that exists)."""
    from cockpit.run.launch import check_launch

    check_launch(num_processes, accelerate_config)


def create_run(cfg: TrainConfig, num_processes: int = 1, accelerate_config: str | None = None,
               progress=None) -> Path:
    """Check the start (layout, model, data, disk) and create the run directory; a refused
    start leaves nothing behind (:func:`cockpit.run.launch.prepare_run`)."""
    from cockpit.run.launch import prepare_run

    check_layout(num_processes, accelerate_config)
    return prepare_run(cfg, progress)


def trains_here(num_processes: int, accelerate_config: str | None) -> bool:
    """Whether this layout can train in the caller's own process (one plain process)."""
    from cockpit.run.launch import single_process

    return single_process(num_processes, accelerate_config)


def launch(run_dir: Path, num_processes: int = 1, accelerate_config: str | None = None) -> int:
    """Spawn the detached trainer of a created run; returns its pid."""
    from cockpit.run.launch import spawn_trainer

    return spawn_trainer(run_dir, num_processes=num_processes, accelerate_config=accelerate_config)


def train_here(run_dir: Path, resume: bool = False, echo=None) -> int:
    """Train (or continue) the run in this process, each event also to ``echo``; the exit
    status (0 finished or stopped, 1 failed). A resume starts a new launch session first."""
    from cockpit.run.foreground import run_foreground

    if resume:
        from cockpit.run.launch import begin_session_here

        begin_session_here(run_dir)
    return run_foreground(run_dir, resume=resume, echo=echo)


def start_run(cfg: TrainConfig, num_processes: int = 1, accelerate_config: str | None = None,
              progress=None) -> Path:
    """Create the run directory and spawn the detached trainer."""
    run_dir = create_run(cfg, num_processes, accelerate_config, progress)
    launch(run_dir, num_processes, accelerate_config)
    return run_dir


def stop_run(run_dir: Path, timeout: float = 0.0) -> str:
    """Graceful stop: SIGTERM to the trainer, which checkpoints and ends ``stopped``; with
    ``timeout``, waits that long for it and returns the state seen last."""
    from cockpit.run.launch import stop_run as _stop

    return _stop(run_dir, timeout=timeout)


def resume_layout(run_dir: Path, num_processes: int | None = None,
                  accelerate_config: str | None = None) -> tuple[int, str | None]:
    """The process layout of a resume: the one asked for, else the run's own."""
    from cockpit.run.launch import resume_layout as _layout

    return _layout(run_dir, num_processes, accelerate_config)


def resume_run(run_dir: Path, num_processes: int | None = None, accelerate_config: str | None = None) -> int:
    """Continue a stopped or failed run from its newest checkpoint, detached; returns the pid."""
    from cockpit.run.launch import resume_run as _resume

    return _resume(run_dir, num_processes, accelerate_config)


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
