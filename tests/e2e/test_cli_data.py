"""``llm-cockpit data check`` and ``data convert-chatgpt`` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def cockpit(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300, check=False)


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.jsonl"
    rows = [{"prompt": "What does (add 1 2) return?", "completion": "3"},
            {"messages": [{"role": "user", "content": "Explain (mul 2 3)."},
                          {"role": "assistant", "content": "It multiplies 2 by 3 and returns 6."}]},
            {"prompt": "What does (add 1 2) return?", "completion": "3"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_check_good_file(good_file):
    proc = cockpit("data", "check", str(good_file), "--model", "none")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"{good_file}: 3 examples from 3 lines (format: mixed)" in out
    assert "duplicates: 1 (same prompt and completion on lines 1, 3)" in out
    assert out.rstrip().endswith("OK") and proc.stderr == ""


def test_check_json_with_the_bundled_tokenizer(good_file):
    proc = cockpit("data", "check", str(good_file), "--json", "--max-length", "50")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True and report["examples"] == report["usable"] == 3
    tokens = report["tokens"]
    assert 0 < tokens["min"] <= tokens["p50"] <= tokens["p95"] <= tokens["max"]
    assert 0 < tokens["trainable"] < tokens["total"]
    # The chat example (line 2) is the longest: it is cut to 50 tokens, part of its answer kept.
    assert report["too_long"] == {"max_length": 50, "count": 1, "truncated": 1, "dropped": 0,
                                  "truncated_lines": [2], "dropped_lines": []}
    assert tokens["max"] > 50 >= tokens["min"]


def test_check_bad_file_prints_one_line_per_problem(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"prompt": "a", "completion": "b"}\n{nope\n\xff\n'
                     b'{"messages": [{"role": "robot", "content": "x"}]}\n')
    proc = cockpit("data", "check", str(path), "--model", "none")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{path}:2: invalid JSON")
    assert lines[1].startswith(f"{path}:3: not valid UTF-8")
    assert lines[2] == f"{path}:4: message 1 has unknown role 'robot' (allowed: system, user, assistant)"
    assert lines[-1] == "NOT OK: 3 problems"
    assert "Traceback" not in proc.stdout + proc.stderr


def test_check_missing_file_is_one_line_on_stderr(tmp_path):
    proc = cockpit("data", "check", str(tmp_path / "nope.jsonl"), "--model", "none")
    assert proc.returncode == 1 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("llm-cockpit: data file") and "does not exist" in line


def test_convert_chatgpt_then_check(tmp_path):
    export = [{
        "title": "LoRA", "conversation_id": "c1", "current_node": "a",
        "mapping": {
            "root": {"id": "root", "message": None, "parent": None, "children": ["u"]},
            "u": {"id": "u", "parent": "root", "children": ["a"],
                  "message": {"author": {"role": "user"},
                              "content": {"content_type": "text", "parts": ["What is LoRA?"]}}},
            "a": {"id": "a", "parent": "u", "children": [],
                  "message": {"author": {"role": "assistant"},
                              "content": {"content_type": "text", "parts": ["A low-rank adapter."]}}},
        }}, {"title": "empty", "mapping": {}, "current_node": None}]
    src = tmp_path / "conversations.json"
    src.write_text(json.dumps(export), encoding="utf-8")
    out = tmp_path / "chats.jsonl"
    proc = cockpit("data", "convert-chatgpt", str(src), str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"converted 1 conversation to {out}" in proc.stdout
    assert "skipped 1 (1 no user question with an answer)" in proc.stdout
    check = cockpit("data", "check", str(out), "--model", "none", "--json")
    assert check.returncode == 0 and json.loads(check.stdout)["format"] == "messages"
