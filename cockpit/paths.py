"""Where the project's bundled files, the user's cache and the user's state live.

The presets and the demo data ship inside the package (``cockpit/bundled/`` of an
installed wheel, found through :mod:`importlib.resources`); in a checkout they are the
project's own ``presets/`` and ``data/``, so an edit there is what runs.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent
"""The checkout this package runs from, when it runs from one (see :func:`in_checkout`)."""


def in_checkout() -> bool:
    """Whether this package runs from the project's source tree (an editable install or
    ``python -m`` in the checkout) rather than from an installed wheel."""
    return (SOURCE_ROOT / "pyproject.toml").is_file() and (SOURCE_ROOT / "presets").is_dir()


def bundled_dir(name: str) -> Path:
    """The bundled ``presets`` or ``data`` directory: the checkout's, else the wheel's."""
    if in_checkout():
        return SOURCE_ROOT / name
    return Path(str(importlib.resources.files("cockpit").joinpath("bundled", name)))


PRESETS_DIR = bundled_dir("presets")
DATA_DIR = bundled_dir("data")


def cache_dir() -> Path:
    """``$LLM_COCKPIT_CACHE``, else ``$XDG_CACHE_HOME/llm-cockpit``, else ``~/.cache/llm-cockpit``."""
    env = os.environ.get("LLM_COCKPIT_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "llm-cockpit"


def state_dir() -> Path:
    """What llm-cockpit remembers between sessions (the runs registry): ``$LLM_COCKPIT_HOME``,
    else ``$XDG_STATE_HOME/llm-cockpit``, else ``~/.local/state/llm-cockpit``."""
    env = os.environ.get("LLM_COCKPIT_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "llm-cockpit"
