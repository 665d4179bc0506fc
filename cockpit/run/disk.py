"""Free-space checks before writing big things (runs, checkpoints, merges, exports)."""

from __future__ import annotations

import shutil
from pathlib import Path

from cockpit.errors import CockpitError

MIN_FREE_BYTES = 1 << 30  # below 1 GiB a checkpoint of even a small model may not fit


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem that holds ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def require_free_space(path: Path, need: int = MIN_FREE_BYTES, what: str = "this") -> None:
    free = free_bytes(path)
    if free < need:
        raise CockpitError(
            f"only {free / 2**30:.2f} GiB free under {path}, {what} needs about {need / 2**30:.2f} GiB",
            "free some space (llm-cockpit runs lists the old runs) or point output_dir= at another disk",
        )
