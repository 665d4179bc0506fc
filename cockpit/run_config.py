"""A run's paths: made absolute when the run is created, read back usable from any directory.

``config_used.yaml`` is what the trainer, ``resume``, ``eval`` and ``export`` read, often
from another directory than the one ``train`` was typed in (an SSH reconnect lands in
``~``). So :func:`finalize_config`, called once where a run is created
(:func:`cockpit.run.launch.prepare_run`), stores every path resolved:

* ``data`` and ``eval_data`` absolute; a value starting with ``hf:`` (a hub dataset id) is
  left as it is, and a glob stays a glob (made absolute as text). A relative path that does
  not exist here but exists in the bundled data (``data/dsl_train.jsonl``) names the
  bundled file, so ``llm-cockpit train`` with the defaults works from any directory;
* ``output_dir`` absolute;
* ``model`` as given, except that a local directory or .gguf file becomes absolute (a hub
  id stays a hub id, the bundled model's name stays its name), and ``model_path`` records
  where it is on this machine (:func:`cockpit.models.sources.locate_model`);
* ``model=RUN`` (a run directory, its name, or ``latest``) as :mod:`cockpit.training.chaining`
  records it: ``parent_run`` the parent's absolute directory, ``model`` the parent
  (from_run=merge) or the parent's base (from_run=continue).

Runs created before this stored paths as typed. :func:`load_run_config` still finds them:
see its docstring.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Sequence
from pathlib import Path

from cockpit.config import TrainConfig, config_to_yaml, load_config_file
from cockpit.errors import CockpitError
from cockpit.paths import DATA_DIR
from cockpit.run.rundir import CONFIG_FILE

HF_DATASET_PREFIX = "hf:"
_GLOB_CHARS = ("*", "?", "[")


def _exists(path: str) -> bool:
    if os.path.exists(path):
        return True
    return any(c in path for c in _GLOB_CHARS) and bool(glob.glob(path, recursive=True))


def _bundled(relative: str) -> str | None:
    """The bundled copy of a project-relative data path (``data/x.jsonl`` -> DATA_DIR/x.jsonl)."""
    parts = Path(relative).parts
    if len(parts) > 1 and parts[0] == "data":
        return str(DATA_DIR.joinpath(*parts[1:]))
    return None


def typed_or_bundled(value: str) -> str:
    """A data path as typed when it exists here, else its bundled copy (``data/dsl_train.jsonl``
    from any directory, as ``train`` finds it), else as typed (so the error names it)."""
    expanded = os.path.expanduser(value)
    if _exists(expanded) or os.path.isabs(expanded):
        return value
    bundled = _bundled(expanded)
    return bundled if bundled is not None and _exists(bundled) else value


def resolve_data_path(value: str | None, bases: Sequence[str | os.PathLike[str]] = ()) -> str | None:
    """A data source as an absolute path (or glob), looked up in ``bases`` (default: the
    current directory), then in the bundled data; a path found nowhere is made absolute
    against the first base, so the error that follows names the full path. Empty values
    and ``hf:`` dataset ids come back unchanged."""
    if not value or value.startswith(HF_DATASET_PREFIX):
        return value
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded):
        return os.path.abspath(expanded)
    bases = [os.fspath(b) for b in bases] or [os.getcwd()]
    for base in bases:
        candidate = os.path.abspath(os.path.join(base, expanded))
        if _exists(candidate):
            return candidate
    bundled = _bundled(expanded)
    if bundled is not None and _exists(bundled):
        return bundled
    return os.path.abspath(os.path.join(bases[0], expanded))


def resolve_model_spec(spec: str, bases: Sequence[str | os.PathLike[str]] = ()) -> str:
    """``model=`` as stored: a local directory or .gguf file (looked up in ``bases``, default
    the current directory) as an absolute path; anything else (a hub id, the bundled
    model's name, a path that does not exist, which the model check then reports) unchanged."""
    from cockpit.models.sources import is_bundled

    spec = str(spec).strip()
    if is_bundled(spec):
        return spec
    expanded = os.path.expanduser(spec)
    if os.path.isabs(expanded):
        return os.path.abspath(expanded)
    for base in [os.fspath(b) for b in bases] or [os.getcwd()]:
        candidate = os.path.abspath(os.path.join(base, expanded))
        if os.path.isdir(candidate) or (candidate.lower().endswith(".gguf") and os.path.isfile(candidate)):
            return candidate
    return spec


CONFIG_HEADER = ("# The resolved configuration of this run (preset + config file + overrides).\n"
                 "# Secrets are never stored here: tokens come from the environment or the HF login.\n")


def config_used_text(cfg: TrainConfig) -> str:
    """What a run's ``config_used.yaml`` holds for ``cfg``: the resolved config (every path
    absolute, :func:`finalize_config`) under its header."""
    return CONFIG_HEADER + config_to_yaml(finalize_config(cfg))


def finalize_config(cfg: TrainConfig, cwd: str | os.PathLike[str] | None = None) -> TrainConfig:
    """``cfg`` with every path resolved against ``cwd`` (default: the current directory), as
    ``config_used.yaml`` stores it (module docstring). ``model_path`` is always recomputed;
    a model that is not usable leaves it empty (the launch's model check reports it)."""
    from cockpit.training.chaining import chain_fields
    from cockpit.models.sources import locate_model

    base = os.fspath(cwd) if cwd is not None else os.getcwd()
    chained = chain_fields(resolve_model_spec(cfg.model, [base]), cfg.from_run, cfg.parent_run)
    model = chained["model"]
    try:
        located = locate_model(model)
    except CockpitError:
        located = None
    return dataclasses.replace(
        cfg,
        model=model,
        parent_run=chained["parent_run"],
        model_path=str(located) if located is not None else None,
        data=resolve_data_path(cfg.data, [base]),
        eval_data=resolve_data_path(cfg.eval_data, [base]),
        output_dir=os.path.abspath(os.path.join(base, os.path.expanduser(cfg.output_dir))),
    )


def origin_dir(root: str | os.PathLike[str], output_dir: str) -> Path | None:
    """The directory ``train`` was typed in, for a run under ``root`` whose config stores the
    relative ``output_dir`` it was created with: ``root`` minus that tail
    (``/home/me/proj/outputs/runs`` with ``outputs/runs`` -> ``/home/me/proj``). None when
    that cannot be told (an absolute or ``..`` output_dir, or a run moved elsewhere since)."""
    stored = os.path.normpath(os.path.expanduser(output_dir))
    if os.path.isabs(stored):
        return None
    tail = Path(stored).parts
    if ".." in tail:
        return None
    for candidate in (Path(os.path.abspath(root)), Path(root).resolve()):
        if not tail:
            return candidate
        if len(candidate.parts) > len(tail) and candidate.parts[-len(tail):] == tail:
            return Path(*candidate.parts[: -len(tail)])
    return None


def load_run_config(run_dir: str | os.PathLike[str]) -> TrainConfig:
    """A run's ``config_used.yaml``, with paths that work from any directory.

    A run made since paths are stored absolute reads back as it was written. An older run
    stored them as typed, relative to the directory ``train`` was typed in; that directory
    is recovered from where the run sits (:func:`origin_dir`: its root minus the stored
    relative ``output_dir``). Relative ``data``, ``eval_data`` and ``model`` paths are
    looked up there first, then in the current directory (where such runs always looked),
    then in the bundled data; ``output_dir`` becomes the run's actual root.
    """
    run_dir = Path(run_dir)
    cfg = load_config_file(run_dir / CONFIG_FILE)
    root = Path(os.path.abspath(run_dir)).parent
    origin = origin_dir(root, cfg.output_dir)
    bases = ([origin] if origin is not None else []) + [Path.cwd()]
    return dataclasses.replace(
        cfg,
        model=resolve_model_spec(cfg.model, bases),
        data=resolve_data_path(cfg.data, bases),
        eval_data=resolve_data_path(cfg.eval_data, bases),
        output_dir=str(root),
    )
