"""The validation report behind ``data check`` (cockpit/data_report.py)."""

from __future__ import annotations

import json

from cockpit.data import build_report
from cockpit.data.tokenize import encode_example, prompt_token_ids


def _write(path, *lines):
    path.write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
    return path


def pc(prompt, completion):
    return json.dumps({"prompt": prompt, "completion": completion})


def test_report_counts_problems_empties_and_duplicates(tmp_path):
    f = _write(tmp_path / "d.jsonl", pc("a", "b"), "{broken", pc("a", "b"), pc("c", ""), "",
               pc("d", "e"), pc("a", "b"))
    report = build_report(f)
    assert not report.ok
    assert (report.lines, report.examples) == (7, 4)
    assert [p.line for p in report.problems] == [2, 4]
    assert report.empty_lines == [4]
    assert report.duplicates == [[1, 3, 7]]
    data = report.to_dict()
    json.dumps(data)  # JSON-ready
    assert data["duplicates"] == {"count": 2, "groups": [[1, 3, 7]]}
    assert data["empty"] == {"count": 1, "lines": [4]}
    assert data["problem_count"] == 2 and data["problems"][0]["kind"] == "json"
    assert data["tokens"] is None and data["too_long"] is None
    lines = report.to_lines()
    assert lines[0] == f"{f}:2: invalid JSON: Expecting property name enclosed in double quotes (column 2)"
    assert lines[1] == f"{f}:4: empty completion"
    text = "\n".join(lines)
    assert "duplicates: 2 (same prompt and completion on lines 1, 3, 7)" in text
    assert "1 blank line skipped" in text
    assert lines[-1] == "NOT OK: 2 problems"


def test_report_of_a_clean_file_is_ok(tmp_path):
    report = build_report(_write(tmp_path / "d.jsonl", pc("a", "b"), pc("c", "d")))
    assert report.ok and report.to_dict()["ok"] is True and report.to_lines()[-1] == "OK"


def test_problem_lines_can_be_capped(tmp_path):
    f = _write(tmp_path / "d.jsonl", pc("a", "b"), *[" " * i + "{x" for i in range(30)])  # 30 different columns
    lines = build_report(f).to_lines(max_problems=5)
    assert lines[5] == f"{f}: ... and 25 more problems (--json lists them all)"


def test_a_problem_repeated_on_many_records_is_one_line(tmp_path):
    f = _write(tmp_path / "d.jsonl", pc("a", "b"), *["{x"] * 30, '{"prompt": 1, "completion": "c"}')
    lines = build_report(f).to_lines()
    assert lines[0] == f"{f}:2, 3, 4 and 27 more: invalid JSON: Expecting property name enclosed in double quotes (column 2)"
    assert lines[1] == f"{f}:32: 'prompt' must be a string, got a number"
    assert lines[-1] == "NOT OK: 31 problems"


def test_token_stats_and_too_long_with_a_tokenizer(tmp_path, bundled_tokenizer):
    t = bundled_tokenizer
    long_answer = "word " * 100
    f = _write(tmp_path / "d.jsonl", pc("short question", "short answer"), pc("q", long_answer),
               pc("very long prompt " * 60, "x"))
    probe = encode_example(_example("q", long_answer), t)
    prompt_len = len(prompt_token_ids(t, [{"role": "user", "content": "q"}]))
    max_length = prompt_len + 10
    report = build_report(f, tokenizer=t, max_length=max_length)
    assert report.truncated_lines == [2] and report.dropped_lines == [3]
    stats = report.token_stats
    assert stats["max"] >= len(probe) and stats["min"] < max_length
    assert stats["min"] <= stats["p50"] <= stats["p95"] <= stats["max"]
    data = report.to_dict()
    assert data["too_long"]["count"] == 2 and data["too_long"]["dropped_lines"] == [3]
    assert data["tokenizer"]
    text = "\n".join(report.to_lines())
    assert f"longer than max_length={max_length} tokens: 2: 1 truncated from the end (lines 2)" in text
    assert "1 dropped, the prompt alone fills max_length (lines 3)" in text
    assert report.ok  # too long is a warning, not a failure


def test_not_ok_when_no_example_fits(tmp_path, bundled_tokenizer):
    f = _write(tmp_path / "d.jsonl", pc("q1", "a"), pc("q2", "b"))
    report = build_report(f, tokenizer=bundled_tokenizer, max_length=8)
    assert not report.problems and report.dropped_lines == [1, 2]
    assert not report.ok and report.to_dict()["usable"] == 0
    assert report.to_lines()[-1] == "NOT OK: no example fits max_length=8; raise it"


def _example(prompt, completion):
    from cockpit.data import Example

    return Example([{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}])
