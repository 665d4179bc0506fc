"""A run that starts from another run's result: ``model=RUN`` (a run directory, its name, or
``latest``).

``from_run=merge`` (the default): the parent's LoRA adapter is merged into its base (the
export's own merge, kept as ``PARENT/export/merged`` so a later export reuses it) and the new
run trains on that model as on any base; a parent that trained every weight (method=full)
is its ``model/`` directly. ``from_run=continue``: the new run loads the parent's adapter and
keeps training it on the parent's base (the reference of a preference stage is then a frozen
copy of that adapter). ``config_used.yaml`` records both: ``parent_run`` is the parent's
directory, and ``model`` is the parent's directory (merge) or the parent's base (continue), so
that everything that asks "which base does model/ apply to" (eval, chat, export) resolves
``model`` as for any run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cockpit.errors import CockpitError
from cockpit.run.rundir import CONFIG_FILE, EXPORT_DIR, MODEL_DIR


@dataclass(frozen=True)
class ParentRun:
    """A finished run whose result a new run starts from."""

    run_dir: Path
    model_dir: Path
    is_adapter: bool
    base_spec: str
    """The parent's own ``model`` (what its adapter applies to)."""
    method: str
    stage: str


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    p = Path(path).expanduser()
    return p.is_dir() and (p / CONFIG_FILE).is_file()


def find_parent(spec: str | None) -> Path | None:
    """The run directory ``spec`` names (a run directory, ``latest``, or a run's name as
    ``llm-cockpit runs`` lists it), or None when it names no run (a model, then)."""
    if not spec:
        return None
    spec = str(spec).strip()
    if is_run_dir(spec):
        return Path(spec).expanduser().resolve()
    from cockpit.models.sources import is_bundled
    from cockpit.run.registry import LATEST, find_run

    if is_bundled(spec) or "/" in spec or os.sep in spec:
        return None
    try:
        found = find_run(spec)
    except CockpitError:
        if spec == LATEST:
            raise CockpitError("model=latest names the newest run, and there is none yet",
                               "train one first (llm-cockpit train), or name a model") from None
        return None
    return found if is_run_dir(found) else None


def read_parent(run_dir: str | os.PathLike[str]) -> ParentRun:
    """The parent run, checked: finished, with a saved ``model/``."""
    from cockpit.run.status import effective_status
    from cockpit.run_config import load_run_config

    run_dir = Path(run_dir).resolve()
    cfg = load_run_config(run_dir)
    state = str(effective_status(run_dir).get("state", "unknown"))
    model_dir = run_dir / MODEL_DIR
    if state != "finished" or not model_dir.is_dir():
        hint = (f"wait for it to finish (llm-cockpit attach {run_dir.name})" if state in ("starting", "running")
                else f"resume it first (llm-cockpit resume {run_dir.name}), or start from a finished run")
        raise CockpitError(f"run {run_dir.name} is {state}: it has no final model to start from", hint)
    is_adapter = (model_dir / "adapter_config.json").is_file()
    if not is_adapter and not (model_dir / "config.json").is_file():
        raise CockpitError(f"{model_dir} holds neither a LoRA adapter nor a full model",
                           f"run {run_dir.name} did not save its result; train it again")
    return ParentRun(run_dir, model_dir, is_adapter, cfg.model, cfg.method, cfg.stage)


def chain_fields(model: str, from_run: str, parent_run: str | None) -> dict[str, str | None]:
    """``model`` and ``parent_run`` as ``config_used.yaml`` records them (module docstring).
    A config that already records a continued run (its ``model`` is the base) keeps its parent."""
    parent = find_parent(model)
    if parent is None and from_run == "continue" and parent_run and is_run_dir(parent_run):
        parent = Path(parent_run).resolve()
        return {"model": model, "parent_run": str(parent)}
    if parent is None:
        return {"model": model, "parent_run": None}
    if from_run == "continue":
        info = read_parent(parent)
        return {"model": info.base_spec, "parent_run": str(parent)}
    return {"model": str(parent), "parent_run": str(parent)}


def check_chain(cfg) -> None:
    """Before a run directory exists: the parent can be started from in the way asked."""
    if not cfg.parent_run:
        return
    parent = read_parent(cfg.parent_run)
    if cfg.from_run == "continue":
        if not parent.is_adapter:
            raise CockpitError(f"from_run=continue needs a run that trained a LoRA adapter; {parent.run_dir.name} "
                               f"trained every weight (method={parent.method})",
                               "use from_run=merge: the new run then starts from its weights")
        if not cfg.uses_lora:
            raise CockpitError(f"from_run=continue keeps training {parent.run_dir.name}'s adapter, which "
                               f"method={cfg.method} has none of", "use method=lora, int8 or qlora, or from_run=merge")


def continued_adapter(cfg) -> Path | None:
    """The adapter a ``from_run=continue`` run loads and keeps training, else None."""
    if cfg.from_run == "continue" and cfg.parent_run:
        return Path(cfg.parent_run) / MODEL_DIR
    return None


def run_model_dir(run_dir: str | os.PathLike[str], report=None) -> Path:
    """The model a finished run produced, as a plain model directory: its ``model/`` for full
    weights, else its adapter merged into its base (``export/merged``, reused while current)."""
    parent = read_parent(run_dir)
    if not parent.is_adapter:
        return parent.model_dir
    from cockpit.export.merge import merge_adapter, merged_is_current, preflight
    from cockpit.export.source import base_model_dir, load_run

    source = load_run(parent.run_dir)
    base = base_model_dir(source)
    if not merged_is_current(source, base):
        if report is not None:
            report("merging", f"Merging the adapter of run {parent.run_dir.name} into its base "
                   "(once: kept as its export/merged)")
        pf = preflight(source, base, "f16", need_merge=True)
        return merge_adapter(source, base, pf.load_dtype)
    return source.export_dir / "merged"


def located_run_model(run_dir: str | os.PathLike[str]) -> Path | None:
    """:func:`run_model_dir` without doing anything: None while the merge has not been made."""
    run_dir = Path(run_dir)
    model_dir = run_dir / MODEL_DIR
    if (model_dir / "config.json").is_file() and not (model_dir / "adapter_config.json").is_file():
        return model_dir.resolve()
    merged = run_dir / EXPORT_DIR / "merged"
    return merged.resolve() if (merged / "config.json").is_file() else None
