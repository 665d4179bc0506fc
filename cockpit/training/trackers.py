"""Experiment trackers: where the trainer's metrics go besides the run directory.

``report_to`` names one or more of :data:`TRACKERS` (comma-separated), or ``none``; the
trainer hands the list to transformers' own integrations (``TrainingArguments.report_to``),
so each tracker logs exactly what transformers logs for it. The run directory's events stay
the cockpit's record either way. Secrets never pass through here: wandb reads
``WANDB_API_KEY`` or its own ``wandb login``, MLflow its ``MLFLOW_TRACKING_*`` variables;
nothing of theirs is written to the config, the events or the logs.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from cockpit.errors import CockpitError

# tracker -> (the modules that provide it, what to do when none is installed)
TRACKERS: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboard", "tensorboardX"), "pip install tensorboard"),
    "wandb": (("wandb",), "pip install wandb, then `wandb login` (or set WANDB_API_KEY)"),
    "mlflow": (("mlflow",), "pip install mlflow (it logs to RUN/mlruns unless MLFLOW_TRACKING_URI is set)"),
    "trackio": (("trackio",), "pip install trackio"),
}
NONE = "none"


def tracker_names(report_to: str) -> list[str]:
    """``"tensorboard, wandb"`` -> ``["tensorboard", "wandb"]``; ``"none"`` -> ``[]``."""
    names = [n.strip().lower() for n in report_to.split(",") if n.strip()]
    return [] if names in ([], [NONE]) else names


def unknown_trackers(report_to: str) -> list[str]:
    """The names in ``report_to`` that are no tracker (``none`` mixed with others counts)."""
    return [n for n in (s.strip().lower() for s in report_to.split(",")) if n and n not in TRACKERS] \
        if tracker_names(report_to) else []


def check_trackers(report_to: str) -> None:
    """Refuse, in one line, a tracker whose package is not installed (before any run directory)."""
    for name in tracker_names(report_to):
        modules, install = TRACKERS[name]
        if not any(importlib.util.find_spec(m) is not None for m in modules):
            raise CockpitError(f"report_to={name} needs the {modules[0]} package, which is not installed",
                               f"{install}; or report_to=tensorboard (the default) or report_to=none")


def tracker_environment(report_to: str, run_dir: Path) -> dict[str, str]:
    """Where the local trackers write, for the trainer's own process: TensorBoard under
    ``RUN/logs``, MLflow (unless told otherwise) under ``RUN/mlruns``, wandb's run named after
    the run directory in the ``llm-cockpit`` project unless ``WANDB_PROJECT`` says otherwise."""
    names = tracker_names(report_to)
    env = {}
    if "tensorboard" in names:
        env["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "logs")
    if "mlflow" in names and not os.environ.get("MLFLOW_TRACKING_URI"):
        env["MLFLOW_TRACKING_URI"] = (run_dir / "mlruns").as_uri()
    if "wandb" in names and not os.environ.get("WANDB_PROJECT"):
        env["WANDB_PROJECT"] = "llm-cockpit"
    return env
