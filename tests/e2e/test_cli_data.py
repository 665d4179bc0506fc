"""``llm-cockpit data check`` and ``data convert-chatgpt`` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def cockpit(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit.cli.main", *args], capture_output=True, text=True,
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
    assert lines[2] == f"{path}:4: message 1 has unknown role 'robot' (allowed: system, user, assistant, tool)"
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


def test_check_shows_the_examples_as_the_model_sees_them(good_file):
    proc = cockpit("data", "check", str(good_file), "--examples", "1")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "line 1 as the model sees it ([[learned]]," in out
    assert "<|im_start|>assistant\n    [[3<|im_end|>]]" in out  # the answer and its end-of-turn token
    assert "tokens per epoch:" in out and "of which learned (answers)" in out
    report = json.loads(cockpit("data", "check", str(good_file), "--json", "--examples", "2").stdout)
    shown = report["examples_shown"]
    assert [m["where"] for m in shown] == ["line 1", "line 2"]
    assert "".join(s["text"] for s in shown[0]["segments"] if s["learned"]) == "3<|im_end|>"
    assert 0 < report["learned_share"] < 1


def test_check_with_a_column_mapping_and_a_forced_format(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("question,answer\nWhat is 2+2?,4\nAnd 3+3?,6\n", encoding="utf-8")
    refused = cockpit("data", "check", str(path), "--model", "none")
    assert refused.returncode == 1
    assert "map them with columns=prompt:question,completion:answer" in refused.stdout
    mapped = cockpit("data", "check", str(path), "--model", "none", "--columns", "prompt:question,completion:answer")
    assert mapped.returncode == 0 and "2 examples from 3 lines (format: prompt_completion)" in mapped.stdout
    forced = cockpit("data", "check", str(path), "--model", "none", "--data-format", "text",
                     "--columns", "text:question")
    assert forced.returncode == 0 and "(format: text)" in forced.stdout


def test_convert_writes_normalized_jsonl_that_trains_the_same(tmp_path):
    src = tmp_path / "alpaca.json"
    src.write_text(json.dumps([{"instruction": "Say hi", "input": "", "output": "hi", "id": 7},
                               {"instruction": "Sum", "input": "1 2", "output": "3"}]), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = cockpit("data", "convert", str(src), str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"wrote 2 examples (2 alpaca) to {out}" in proc.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0] == {"messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi"}],
                       "id": 7}
    assert rows[1]["messages"][0]["content"] == "Sum\n1 2"
    again = cockpit("data", "convert", str(out), str(tmp_path / "pc.jsonl"), "--format", "prompt_completion")
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "pc.jsonl").read_text().splitlines()[0]) == {"prompt": "Say hi",
                                                                               "completion": "hi", "id": 7}
    exists = cockpit("data", "convert", str(src), str(out))
    assert exists.returncode == 1 and "already exists -> choose another name or pass --force" in exists.stderr


def test_convert_writes_nothing_when_a_record_is_bad(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "c"}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = cockpit("data", "convert", str(src), str(out))
    assert proc.returncode == 1 and not out.exists()
    assert f"{src}:2: missing key 'completion'" in proc.stderr and "nothing written" in proc.stderr
    assert not list(tmp_path.glob(".out.jsonl.*")), "no temporary file is left behind"
    kept = cockpit("data", "convert", str(src), str(out), "--skip-bad", "--json")
    report = json.loads(kept.stdout)
    assert report["written"] == 1 and report["problem_count"] == 1 and out.exists()
    multi = tmp_path / "multi.jsonl"
    multi.write_text(json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                              {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]})
                     + "\n", encoding="utf-8")
    refused = cockpit("data", "convert", str(multi), str(tmp_path / "pc.jsonl"), "--format", "prompt_completion")
    assert refused.returncode == 1 and "cannot be one prompt/completion pair" in refused.stderr
