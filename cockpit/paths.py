"""Where the project's bundled files, the user's cache and the user's state live."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PRESETS_DIR = REPO_ROOT / "presets"
DATA_DIR = REPO_ROOT / "data"


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
