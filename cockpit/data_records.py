"""One JSONL record -> one :class:`Example`: the two line formats, validation and cleaning.

``cockpit.data`` reads files and reports problems by ``file:line``; this module knows
what a single record must look like. Everything public here is re-exported by
``cockpit.data``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant")

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_BLANK_RUN = re.compile(r"\n{4,}")  # 3+ blank lines = 4+ newlines in a row


@dataclass
class Example:
    """One training example, normalized to chat messages ending with the assistant's answer."""

    messages: list[dict]
    """``[{"role": "system"|"user"|"assistant", "content": str}, ...]``; the last is the assistant's."""
    line: int = 0
    """1-based line number in the source file (0 for examples built in code)."""
    meta: dict = field(default_factory=dict)
    """Every other key of the source line (``must_include``, ``task``, ...)."""
    format: str = "messages"
    """The line's format: ``prompt_completion`` or ``messages``."""

    @property
    def prompt(self) -> str:
        """The content of the last user message."""
        for msg in reversed(self.messages):
            if msg["role"] == "user":
                return msg["content"]
        return ""

    @property
    def completion(self) -> str:
        """The content of the final assistant message (what is learned)."""
        return self.messages[-1]["content"]

    @property
    def system(self) -> str | None:
        """The system message's content, or None when there is none."""
        first = self.messages[0]
        return first["content"] if first["role"] == "system" else None

    @property
    def prompt_messages(self) -> list[dict]:
        """The conversation without the final assistant turn: what generation is given."""
        return self.messages[:-1]

    def key(self) -> tuple:
        """Identity used for duplicate detection and leak-free splitting (prompt + completion)."""
        return tuple((m["role"], m["content"]) for m in self.messages)

    def to_json(self) -> dict[str, Any]:
        """The example as a JSONL line object, in its original format."""
        if self.format == "prompt_completion":
            out: dict[str, Any] = {"prompt": self.prompt, "completion": self.completion}
            if self.system is not None:
                out["system"] = self.system
        else:
            out = {"messages": [dict(m) for m in self.messages]}
        out.update(self.meta)
        return out


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


_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
               int: "a number", float: "a number", type(None): "null"}


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _text(value: Any) -> str | None:
    """Content as a string; OpenAI-style lists of ``{"type": "text"}`` parts are joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in value):
        return "".join(p["text"] for p in value)
    return None


class RecordError(ValueError):
    """A record that is not a valid example; ``kind`` is the Problem category."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def _parse_messages(raw: Any) -> list[dict]:
    if not isinstance(raw, list) or not raw:
        got = "an empty array" if raw == [] else _type_name(raw)
        raise RecordError(f"'messages' must be a non-empty array of {{role, content}} objects, got {got}",
                          "type")
    messages = []
    for i, msg in enumerate(raw, start=1):
        if not isinstance(msg, dict):
            raise RecordError(f"message {i} must be an object, got {_type_name(msg)}", "type")
        if "role" not in msg or "content" not in msg:
            missing = "role" if "role" not in msg else "content"
            raise RecordError(f"message {i} has no '{missing}' key", "keys")
        role = msg["role"]
        if role not in ROLES:
            raise RecordError(f"message {i} has unknown role {role!r} (allowed: system, user, assistant)",
                              "role")
        content = _text(msg["content"])
        if content is None:
            raise RecordError(f"message {i} ({role}): 'content' must be a string, "
                              f"got {_type_name(msg['content'])}", "type")
        if role == "system" and i != 1:
            raise RecordError(f"message {i}: a system message may only come first", "structure")
        messages.append({"role": role, "content": content})
    roles = [m["role"] for m in messages]
    if "assistant" not in roles:
        raise RecordError("no assistant turn: there is no answer to learn", "structure")
    if roles[-1] != "assistant":
        raise RecordError(f"the last message must be the assistant's answer, got {roles[-1]!r}",
                          "structure")
    if "user" not in roles:
        raise RecordError("no user turn before the assistant's answer", "structure")
    return messages


def _parse_prompt_completion(obj: dict) -> list[dict]:
    for key in ("prompt", "completion"):
        if key not in obj:
            raise RecordError(f"missing key '{key}'", "keys")
        if not isinstance(obj[key], str):
            raise RecordError(f"'{key}' must be a string, got {_type_name(obj[key])}", "type")
    system = obj.get("system")
    if system is not None and not isinstance(system, str):
        raise RecordError(f"'system' must be a string, got {_type_name(system)}", "type")
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": obj["prompt"]})
    messages.append({"role": "assistant", "content": obj["completion"]})
    return messages


def parse_record(obj: Any, *, clean: bool = True, system_prompt: str | None = None,
                 line: int = 0) -> Example:
    """Turn one decoded JSON line into an :class:`Example`.

    Raises :class:`RecordError` (a ValueError with a user-facing message and a ``kind``)
    when the record is not a valid example. Exposed for callers that get records from elsewhere.
    """
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {_type_name(obj)}", "type")
    has_chat = "messages" in obj
    has_pc = "prompt" in obj or "completion" in obj
    if has_chat and has_pc:
        raise RecordError("has both 'messages' and 'prompt'/'completion'; use one format per line",
                          "keys")
    if has_chat:
        messages, fmt, used = _parse_messages(obj["messages"]), "messages", {"messages"}
    elif has_pc:
        messages, fmt = _parse_prompt_completion(obj), "prompt_completion"
        used = {"prompt", "completion", "system"}
    else:
        found = ", ".join(sorted(map(str, obj))[:6]) or "none"
        raise RecordError("needs 'prompt' and 'completion' keys or a 'messages' array "
                          f"(found keys: {found})", "keys")
    if clean:
        messages = [{"role": m["role"], "content": clean_text(m["content"])} for m in messages]
    if messages[0]["role"] == "system" and not messages[0]["content"].strip():
        messages = messages[1:]  # an empty system message says nothing; templates add their own
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    for i, msg in enumerate(messages, start=1):
        if not msg["content"].strip():
            what = {"user": "prompt", "assistant": "completion"}.get(msg["role"], msg["role"])
            where = "" if fmt == "prompt_completion" else f" (message {i})"
            raise RecordError(f"empty {what}{where}", "empty")
    meta = {k: v for k, v in obj.items() if k not in used}
    return Example(messages=messages, line=line, meta=meta, format=fmt)
