"""Convert a ChatGPT data export (``conversations.json``) into chat-format JSONL.

The export is a JSON array of conversations. Each holds a ``mapping`` of message nodes
(``{id: {"message": ..., "parent": id, "children": [...]}}``), a tree because every
edited prompt or regenerated answer starts a new branch. ``current_node`` is the leaf
the user last saw; following ``parent`` links from it to the root gives the main branch,
which is the conversation as it reads in the app.

Only what a chat model should learn is kept: user and assistant text (and a non-empty
system message). Tool calls, tool results, browsing, hidden reasoning, images and the
app's hidden context messages are skipped.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.errors import CockpitError
from cockpit.run.atomic import atomic_write_text

_TEXT_TYPES = ("text", "multimodal_text")


@dataclass
class ConvertResult:
    """How many conversations became training examples, and why the others did not."""

    converted: int = 0
    skipped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    """Why conversations were skipped, with counts."""

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {"converted": self.converted, "skipped": self.skipped, "reasons": self.reasons}


def read_export(path: str | os.PathLike[str]) -> list[Any]:
    """The list of conversations from ``conversations.json`` or the export's .zip."""
    path = Path(path)
    if not path.exists():
        raise CockpitError(f"{path} does not exist",
                           "pass conversations.json from your ChatGPT data export (or the export .zip)")
    if path.is_dir():
        inner = path / "conversations.json"
        if not inner.is_file():
            raise CockpitError(f"{path} is a directory without conversations.json",
                               "pass the conversations.json file of the ChatGPT export")
        path = inner
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == "conversations.json"]
                if not names:
                    raise CockpitError(f"{path} has no conversations.json inside",
                                       "pass the .zip of a ChatGPT data export")
                raw = zf.read(names[0])
        else:
            raw = path.read_bytes()
    except (OSError, zipfile.BadZipFile) as exc:
        raise CockpitError(f"cannot read {path}: {exc}", "check the file") from exc
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise CockpitError(f"{path} is not UTF-8 text", "pass conversations.json from the export") from exc
    except ValueError as exc:
        raise CockpitError(f"{path} is not valid JSON: {exc}",
                           "pass conversations.json from the ChatGPT export, unchanged") from exc
    if isinstance(data, dict) and "mapping" in data:
        data = [data]  # a single conversation
    if not isinstance(data, list):
        raise CockpitError(f"{path} is not a ChatGPT export (expected a list of conversations)",
                           "pass conversations.json from the ChatGPT data export")
    return data


def _message_text(message: dict) -> str | None:
    """The visible text of a message, or None when it is not plain user/assistant text."""
    content = message.get("content")
    if not isinstance(content, dict) or content.get("content_type") not in _TEXT_TYPES:
        return None  # code, execution_output, tether_*, thoughts, reasoning_recap, ...
    metadata = message.get("metadata") or {}
    if metadata.get("is_visually_hidden_from_conversation"):
        return None
    if message.get("recipient", "all") != "all":
        return None  # an assistant message addressed to a tool is a tool call
    parts = content.get("parts") or []
    text = "\n".join(p for p in parts if isinstance(p, str))  # dict parts: images, files
    return text.strip() or None


def main_branch(conversation: dict) -> list[dict]:
    """The conversation's messages along the ``current_node`` -> root chain, in order,
    as ``{"role", "content"}`` with consecutive same-role messages merged."""
    mapping = conversation.get("mapping")
    if not isinstance(mapping, dict):
        return []
    node_id = conversation.get("current_node")
    if node_id not in mapping:  # older exports: take the last leaf
        leaves = [k for k, v in mapping.items() if isinstance(v, dict) and not v.get("children")]
        node_id = leaves[-1] if leaves else None
    chain = []
    seen = set()
    while node_id is not None and node_id in mapping and node_id not in seen:
        seen.add(node_id)  # a malformed export could contain a cycle
        node = mapping[node_id]
        if not isinstance(node, dict):
            break
        chain.append(node)
        node_id = node.get("parent")
    messages: list[dict] = []
    for node in reversed(chain):
        message = node.get("message")
        if not isinstance(message, dict):
            continue
        role = (message.get("author") or {}).get("role")
        if role not in ("system", "user", "assistant"):
            continue  # tool results
        text = _message_text(message)
        if text is None:
            continue
        if role == "system" and messages:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n\n" + text  # an answer split around a tool call
        else:
            messages.append({"role": role, "content": text})
    while messages and messages[-1]["role"] != "assistant":
        messages.pop()  # a trailing question without an answer teaches nothing
    return messages


def convert_chatgpt(src: str | os.PathLike[str], dst: str | os.PathLike[str],
                    *, overwrite: bool = False) -> ConvertResult:
    """Write the main branch of every conversation in ``src`` as one JSONL line of ``dst``.

    The output is written atomically, so a failed conversion never leaves half a file.
    """
    dst = Path(dst)
    if dst.is_dir():
        raise CockpitError(f"{dst} is a directory", "give a file name for the output, e.g. chats.jsonl")
    if dst.exists() and not overwrite:
        raise CockpitError(f"{dst} already exists", "choose another output file or pass --force")
    conversations = read_export(src)
    result = ConvertResult()
    lines = []
    for conv in conversations:
        if not isinstance(conv, dict) or "mapping" not in conv:
            result.skip("not a conversation")
            continue
        messages = main_branch(conv)
        roles = {m["role"] for m in messages}
        if "assistant" not in roles or "user" not in roles:
            result.skip("no user question with an answer")
            continue
        line: dict[str, Any] = {"messages": messages}
        if isinstance(conv.get("title"), str):
            line["title"] = conv["title"]
        conv_id = conv.get("conversation_id") or conv.get("id")
        if isinstance(conv_id, str):
            line["conversation_id"] = conv_id
        lines.append(json.dumps(line, ensure_ascii=False))
        result.converted += 1
    if not lines:
        raise CockpitError(f"no conversation in {src} has a user question with an answer "
                           f"({result.skipped} skipped)", "check that this is the right export")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(dst, "\n".join(lines) + "\n")
    except OSError as exc:
        raise CockpitError(f"cannot write {dst}: {exc.strerror}",
                           "choose a writable location for the output") from exc
    return result
