"""One way from what a person chose to a run's configuration.

``llm-cockpit train --preset P --config F k=v ...`` and the wizard's answers both become a
:class:`TrainRequest`; :func:`build_train_config` turns it into the validated
:class:`~cockpit.config.TrainConfig` (defaults <- preset <- config file <- choices), and
:func:`config_used_text` is what the run's ``config_used.yaml`` will hold (every path
resolved). Precision stays as asked (``auto`` in the presets): the trainer decides it on
the machine that trains (:mod:`cockpit.training.precision`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cockpit.config import TrainConfig, build_config
from cockpit.run_config import config_used_text


@dataclass(frozen=True)
class TrainRequest:
    """What a person asked for: a preset, a config file, and ``key=value`` choices over them."""

    preset: str | None = None
    config_file: str | None = None
    choices: Mapping[str, Any] = field(default_factory=dict)


def build_train_config(request: TrainRequest) -> TrainConfig:
    """The validated config of ``request`` (a bad key or value names itself)."""
    return build_config(request.preset, request.config_file, dict(request.choices))


__all__ = ["TrainRequest", "build_train_config", "config_used_text"]
