"""What ``llm-cockpit chat X`` talks to: a run (its trained weights and its exported GGUF) or a model.

A run is named as every other command names one (a name or unique prefix, a path, or
``latest``/nothing for the newest run, found in every runs directory llm-cockpit knows:
:func:`cockpit.run.registry.find_run`); anything else is a model spec as ``eval`` takes it
(a hub id, a model directory, a ``.gguf`` file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cockpit.errors import CockpitError


@dataclass(frozen=True)
class ChatTarget:
    """What ``llm-cockpit chat X`` names: a run directory, or a model spec (``run_dir`` None)."""

    spec: str
    run_dir: Path | None

    @property
    def label(self) -> str:
        return self.run_dir.name if self.run_dir is not None else self.spec


def resolve_target(spec: str | None, output_dir: str | os.PathLike[str] | None = None) -> ChatTarget:
    """A run when ``spec`` names one (nothing and ``latest`` mean the newest run), else a model."""
    from cockpit.run.rundir import CONFIG_FILE, LATEST
    from cockpit.run.registry import find_run

    if spec:
        path = Path(spec).expanduser()
        if path.is_dir():
            return ChatTarget(spec, path.resolve() if (path / CONFIG_FILE).exists() else None)
        if path.suffix.lower() == ".gguf":
            return ChatTarget(spec, None)
    try:
        return ChatTarget(spec or LATEST, find_run(spec, output_dir))
    except CockpitError:
        if spec in (None, "", LATEST):
            raise
    return ChatTarget(spec, None)


def run_weights(run_dir: Path) -> tuple[Path, bool, str | None]:
    """(directory with the trained weights, whether it is a LoRA adapter, a note) of a run:
    ``model/`` of a finished run, the newest complete checkpoint of a stopped or failed one."""
    from cockpit.run.status import ACTIVE_STATES, effective_status

    state = str(effective_status(run_dir).get("state", "unknown"))
    model_dir = run_dir / "model"
    note = None
    if not model_dir.is_dir():
        if state in ACTIVE_STATES:
            raise CockpitError(f"run {run_dir.name} is still {state}: it has no trained model yet",
                               f"chat when it has finished, or stop it first: llm-cockpit stop {run_dir.name}")
        from cockpit.training.trainer import newest_complete_checkpoint

        model_dir = newest_complete_checkpoint(run_dir)
        if model_dir is None:
            raise CockpitError(f"run {run_dir.name} ({state}) has no trained model and no complete checkpoint",
                               f"continue it with: llm-cockpit resume {run_dir.name}")
        note = f"{state} run: the model of {model_dir.name}"
    return model_dir, (model_dir / "adapter_config.json").exists(), note


def exported_gguf(run_dir: Path) -> Path | None:
    """The newest ``.gguf`` of ``RUN/export/`` (the export's final file, not an intermediate)."""
    export = run_dir / "export"
    files = [p for p in export.glob("*.gguf") if not p.name.startswith(".")] if export.is_dir() else []
    return max(files, key=lambda p: p.stat().st_mtime) if files else None
