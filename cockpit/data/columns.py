"""Data whose keys have other names: the column mapping (``columns=prompt:question,...``)
and, when a record's keys fit no format, the mapping to suggest (never to guess)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cockpit.data.records import type_name
from cockpit.errors import CockpitError

# Every key a column mapping may name: the record-level keys of each format, and the
# per-turn keys of messages/conversations (``role``/``content``, ShareGPT's ``from``/``value``).
COLUMN_KEYS = ("prompt", "completion", "system", "messages", "instruction", "input", "output", "history",
               "conversations", "tools", "text", "role", "content", "from", "value")
_TURN_KEYS = ("role", "content", "from", "value")

# Names that often hold a prompt or an answer: used to suggest a column mapping, never to guess one.
_PROMPT_LIKE = ("question", "query", "input", "instruction", "problem", "source", "context", "q")
_ANSWER_LIKE = ("answer", "response", "output", "target", "solution", "reply", "a", "label_text")


def parse_columns(value: Any) -> dict[str, str]:
    """A column mapping from ``prompt:question,completion:answer`` or a mapping.

    Keys are what the cockpit expects (``prompt``, ``completion``, ``text``, ...), values
    what the data calls them. Raises CockpitError naming the bad entry.
    """
    if value in (None, "", {}):
        return {}
    if isinstance(value, str):
        pairs = {}
        for item in value.split(","):
            if not item.strip():
                continue
            ours, sep, theirs = item.partition(":")
            if not sep or not ours.strip() or not theirs.strip():
                raise CockpitError(f"columns entry {item.strip()!r} is not ours:theirs",
                                   "write it like columns=prompt:question,completion:answer")
            pairs[ours.strip()] = theirs.strip()
        value = pairs
    if not isinstance(value, Mapping):
        raise CockpitError(f"columns must be a mapping, got {type_name(value)}",
                           "write it like columns=prompt:question,completion:answer")
    out: dict[str, str] = {}
    for ours, theirs in value.items():
        if ours not in COLUMN_KEYS:
            raise CockpitError(f"columns: unknown key {ours!r}", f"map one of: {', '.join(COLUMN_KEYS)}")
        if not isinstance(theirs, str) or not theirs.strip():
            raise CockpitError(f"columns: {ours!r} must name a column of the data, got {theirs!r}",
                               "write it like columns=prompt:question,completion:answer")
        out[str(ours)] = theirs.strip()
    return out


def apply_columns(obj: dict, columns: Mapping[str, str]) -> dict:
    """The record with the data's names replaced by ours (turn keys inside lists too)."""
    if not columns:
        return obj
    renames = {theirs: ours for ours, theirs in columns.items() if ours not in _TURN_KEYS}
    out = {renames.get(k, k): v for k, v in obj.items()}
    turn = {theirs: ours for ours, theirs in columns.items() if ours in _TURN_KEYS}
    if turn:
        for key in ("messages", "conversations"):
            if isinstance(out.get(key), list):
                out[key] = [{turn.get(k, k): v for k, v in t.items()} if isinstance(t, dict) else t
                            for t in out[key]]
    return out


def suggest_columns(keys: list[str]) -> str:
    """A hint like ``; map them with columns=prompt:question,completion:answer`` when the
    keys look like a prompt and an answer under other names ("" otherwise)."""
    lowered = {k.lower(): k for k in keys}
    prompt = next((lowered[k] for k in _PROMPT_LIKE if k in lowered), None)
    answer = next((lowered[k] for k in _ANSWER_LIKE if k in lowered and lowered[k] != prompt), None)
    if prompt and answer:
        return f"; map them with columns=prompt:{prompt},completion:{answer}"
    if len(keys) == 1:
        return f"; for plain text map it with columns=text:{keys[0]}"
    return ""
