"""Reusable Textual widgets of the cockpit: charts, meters, samples, warnings, run watcher.

Widgets never read files or call the engine's slow parts themselves; screens feed them
data. Each widget's default styles live in a ``.tcss`` file beside it (theme variables
only, so they read on dark and light terminals).
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def load_css(name: str) -> str:
    """The text of a widget's ``.tcss`` file, used as its ``DEFAULT_CSS``."""
    return (_HERE / name).read_text(encoding="utf-8")
