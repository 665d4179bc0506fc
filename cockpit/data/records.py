"""One training example, the error a bad record raises, and text cleaning.

Every accepted data format (``cockpit.data.formats``) is normalized into an
:class:`Example`: chat messages whose last one is the assistant's answer, or, for plain
text (continued pretraining), one document. The tokenizer and everything after it deal
with these two shapes only.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "tool")

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_BLANK_RUN = re.compile(r"\n{4,}")  # 3+ blank lines = 4+ newlines in a row


def last_user_content(messages) -> str:
    """The content of the last user message of ``[{"role", "content"}, ...]`` ("" when none)."""
    for msg in reversed(messages):
        if msg["role"] == "user":
            return msg["content"]
    return ""


def record_place(path: str, line: int | None, row: int | None) -> str:
    """``file:12``, ``data.parquet:row 12``, or the path alone: where a record is, as problems say it."""
    if line is not None:
        return f"{path}:{line}"
    if row is not None:
        return f"{path}:row {row}"
    return path


@dataclass
class Example:
    """One training example.

    Supervised formats: ``messages`` ends with the assistant's answer; an assistant turn
    with ``"train": False`` (a ``loss_weight`` of 0 in the source) is context, not learned.
    Plain text: ``text`` is the document, ``messages`` is empty and every token is learned.
    """

    messages: list[dict]
    """``[{"role": "system"|"user"|"assistant"|"tool", "content": str}, ...]``."""
    line: int = 0
    """1-based line (text files) or row (Parquet, hub and saved datasets) of the record; 0 when built in code."""
    meta: dict = field(default_factory=dict)
    """Every other key of the source record (``must_include``, ``task``, ...)."""
    format: str = "messages"
    """The record's format: prompt_completion, messages, alpaca, sharegpt or text."""
    text: str | None = None
    """The document of a plain-text record (format ``text``)."""
    path: str = ""
    """The file (or dataset) the record came from; set by the loaders."""
    by_row: bool = False
    """``line`` counts rows (columnar data), not lines."""

    @property
    def where(self) -> str:
        """``file:12`` or ``data.parquet:row 12``: where the record is, as problems say it."""
        return f"{self.path}:row {self.line}" if self.by_row else f"{self.path}:{self.line}"

    @property
    def prompt(self) -> str:
        """The content of the last user message ("" for plain text)."""
        return last_user_content(self.messages)

    @property
    def completion(self) -> str:
        """The final assistant message (what is learned), or the whole document of plain text."""
        if self.text is not None:
            return self.text
        return self.messages[-1]["content"]

    @property
    def system(self) -> str | None:
        """The system message's content, or None when there is none."""
        if not self.messages:
            return None
        first = self.messages[0]
        return first["content"] if first["role"] == "system" else None

    @property
    def prompt_messages(self) -> list[dict]:
        """The conversation without the final assistant turn: what generation is given."""
        return self.messages[:-1]

    def key(self) -> tuple:
        """Identity used for duplicate detection and leak-free splitting (prompt + completion)."""
        if self.text is not None:
            return (("text", self.text),)
        return tuple((m["role"], m["content"]) for m in self.messages)

    def to_json(self) -> dict[str, Any]:
        """The example as a JSONL line object, in its original format where that is one of
        the two native ones (prompt/completion, messages); other formats as messages."""
        if self.text is not None:
            out: dict[str, Any] = {"text": self.text}
        elif self.format == "prompt_completion" and self.is_single_turn:
            out = {"prompt": self.prompt, "completion": self.completion}
            if self.system is not None:
                out["system"] = self.system
        else:
            out = {"messages": [dict(m) for m in self.messages]}
        out.update(self.meta)
        return out

    @property
    def is_single_turn(self) -> bool:
        """One user turn and one answer (with an optional system message first)."""
        roles = [m["role"] for m in self.messages if m["role"] != "system"]
        return roles == ["user", "assistant"]


def clean_text(s: str) -> str:
    """Normalize text for training without changing what it says.

    NFKC normalization (full-width and compatibility characters to their plain form),
    zero-width characters removed (U+200B..U+200D, U+2060, U+FEFF), CRLF/CR to LF,
    trailing spaces stripped from every line, runs of 3+ blank lines collapsed to two,
    blank lines at the start and whitespace at the end removed.
    """
    s = unicodedata.normalize("NFKC", s).translate(_ZERO_WIDTH)
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    # Spaces *inside* a line are kept on purpose: leading indentation is syntax in Python,
    # YAML and many DSLs, and aligned columns carry meaning in tables and code comments.
    # Collapsing them would teach the model broken code; only invisible trailing
    # whitespace (which no reader can see or rely on) is removed.
    s = "\n".join(line.rstrip() for line in s.split("\n"))
    s = _BLANK_RUN.sub("\n\n\n", s)
    return s.lstrip("\n").rstrip()


class RecordError(ValueError):
    """A record that is not a valid example; ``kind`` is the Problem category."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
               int: "a number", float: "a number", type(None): "null"}


def type_name(value: Any) -> str:
    """How a JSON value's type reads in a message: ``an array``, ``a number``, ``null``."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


@dataclass
class Problem:
    """One thing wrong with the data, at ``path:line`` (text files), ``path:row N``
    (Parquet, hub and saved datasets) or the whole ``path`` (both None)."""

    path: str
    line: int | None
    message: str
    kind: str = "invalid"
    """A short category for counting: encoding, json, type, keys, role, structure, empty, too_large, ..."""
    row: int | None = None

    @property
    def where(self) -> str:
        return record_place(self.path, self.line, self.row)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "message": self.message, "kind": self.kind}
        if self.row is not None:
            out["row"] = self.row
        out["path"] = self.path
        return out
