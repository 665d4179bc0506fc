"""Converting a ChatGPT export to chat JSONL (cockpit/convert_chatgpt.py)."""

from __future__ import annotations

import json
import zipfile

import pytest

from cockpit.data.chatgpt import convert_chatgpt, main_branch
from cockpit.data import load_examples_strict
from cockpit.errors import CockpitError


def node(nid, parent, role=None, text=None, children=(), content_type="text", **message_extra):
    message = None
    if role is not None:
        message = {"id": nid, "author": {"role": role},
                   "content": {"content_type": content_type, "parts": [text] if text is not None else []},
                   **message_extra}
    return nid, {"id": nid, "message": message, "parent": parent, "children": list(children)}


def conversation(title, nodes, current):
    return {"title": title, "conversation_id": f"id-{title}", "mapping": dict(nodes), "current_node": current}


def branched():
    """root -> system(empty) -> user -> {old answer, regenerated answer} -> user -> answer."""
    return conversation("branched", [
        node("root", None, children=["sys"]),
        node("sys", "root", "system", "", children=["u1"]),
        node("u1", "sys", "user", "What is LoRA?", children=["a1-old", "a1"]),
        node("a1-old", "u1", "assistant", "An old answer nobody kept."),
        node("a1", "u1", "assistant", "A low-rank adapter.", children=["u2"]),
        node("u2", "a1", "user", "And QLoRA?", children=["t1"]),
        node("t1", "u2", "assistant", "search('qlora')", children=["tool"], recipient="browser"),
        node("tool", "t1", "tool", "results...", children=["a2"]),
        node("a2", "tool", "assistant", "LoRA on a 4-bit base.", children=["a2b"]),
        node("a2b", "a2", "assistant", "It saves memory.", children=["img"]),
        node("img", "a2b", "user", None, children=[], content_type="multimodal_text"),
    ], current="img")


def test_main_branch_follows_current_node_and_keeps_only_text():
    assert main_branch(branched()) == [
        {"role": "user", "content": "What is LoRA?"},
        {"role": "assistant", "content": "A low-rank adapter."},
        {"role": "user", "content": "And QLoRA?"},
        {"role": "assistant", "content": "LoRA on a 4-bit base.\n\nIt saves memory."},
    ]


def test_convert_writes_loadable_jsonl_and_counts(tmp_path):
    no_answer = conversation("no-answer", [node("r", None, children=["u"]),
                                           node("u", "r", "user", "Hello?")], current="u")
    src = tmp_path / "conversations.json"
    src.write_text(json.dumps([branched(), no_answer, "junk"]), encoding="utf-8")
    out = tmp_path / "out" / "chats.jsonl"
    result = convert_chatgpt(src, out)
    assert (result.converted, result.skipped) == (1, 2)
    assert result.reasons == {"no user question with an answer": 1, "not a conversation": 1}
    (ex,) = load_examples_strict(out)
    assert ex.completion == "LoRA on a 4-bit base.\n\nIt saves memory."
    assert ex.meta == {"title": "branched", "conversation_id": "id-branched"}
    with pytest.raises(CockpitError, match="already exists"):
        convert_chatgpt(src, out)
    assert convert_chatgpt(src, out, overwrite=True).converted == 1


def test_convert_reads_the_export_zip(tmp_path):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("conversations.json", json.dumps([branched()]))
        zf.writestr("chat.html", "<html></html>")
    assert convert_chatgpt(archive, tmp_path / "o.jsonl").converted == 1


@pytest.mark.parametrize("content,fragment", [
    ("{not json", "is not valid JSON"),
    ('{"a": 1}', "is not a ChatGPT export"),
    ("[]", "no conversation in"),
])
def test_convert_rejects_bad_exports_without_writing(tmp_path, content, fragment):
    src = tmp_path / "conversations.json"
    src.write_text(content, encoding="utf-8")
    with pytest.raises(CockpitError, match=fragment):
        convert_chatgpt(src, tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()
