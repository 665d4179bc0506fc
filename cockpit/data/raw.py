"""What every reader shares: a raw record with its place, the counts, the limits."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.data.records import Problem

# Even a 128k-token context holds only about 0.5 MB of text, so a record over this limit
# would be almost entirely truncated away; refusing it also keeps memory bounded when a
# file without newlines (a dump, a binary) is passed by mistake.
MAX_LINE_BYTES = 2 * 1024 * 1024

# Checks a columnar dataset's columns before its rows: (column -> Arrow type, label) -> problems.
ColumnCheck = Callable[[dict[str, str], str], list[Problem]]


@dataclass
class Record:
    """One raw record (a decoded JSON object or a row) and where it is."""

    obj: Any
    path: str
    line: int | None = None
    row: int | None = None


@dataclass
class ReadStats:
    """What the readers saw besides records: counts and notes worth telling the user."""

    lines: int = 0
    """Lines (text files) or rows (columnar data) read, blank lines included."""
    blank_lines: int = 0
    notes: list[str] = field(default_factory=list)
    bad_utf8: int = 0


# Checks a columnar dataset's columns before its rows: (column -> Arrow type, label) -> problems.
ColumnCheck = Callable[[dict[str, str], str], list[Problem]]


def open_bytes(path: Path):
    """The file's bytes, decompressed when its name ends in .gz."""
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")
