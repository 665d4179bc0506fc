"""Atomic file replacement: a reader sees the old version of a file or the new one, never half.

Write a temporary file beside the target (same filesystem), flush and fsync it, then
``os.replace`` it over the target; on any failure the temporary file is removed. Readers
of such files take what is there (:func:`read_json_object`) and never fail on it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """JSON variant of :func:`atomic_write_text` (indented, UTF-8)."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    # a lone surrogate (an error naming a non-UTF-8 file) can only be inside a JSON string:
    # written as the JSON escape \udXXX it reads back as it was
    atomic_write_text(path, text.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")


def atomic_symlink(target: str | os.PathLike[str], link: str | os.PathLike[str]) -> None:
    """Point ``link`` at ``target`` atomically (new link beside it, then rename over)."""
    link = Path(link)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    os.replace(tmp, link)


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object in ``path`` (empty when missing, unreadable or not an object)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


__all__ = ["atomic_write_text", "atomic_write_json", "atomic_symlink", "read_json_object"]
