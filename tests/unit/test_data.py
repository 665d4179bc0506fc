"""Loading, validating, cleaning and splitting training data (cockpit/data.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cockpit.data import (
    MAX_LINE_BYTES,
    Example,
    clean_text,
    load_examples,
    load_examples_strict,
    split_examples,
)
from cockpit.errors import CockpitError


def write_lines(path: Path, *lines) -> Path:
    """Write objects (as JSON) or raw strings, one per line."""
    text = "".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines)
    path.write_text(text, encoding="utf-8")
    return path


def pc(prompt: str, completion: str, **extra) -> dict:
    return {"prompt": prompt, "completion": completion, **extra}


def chat(*pairs) -> dict:
    return {"messages": [{"role": r, "content": c} for r, c in pairs]}


# ---------------------------------------------------------------- clean_text


def test_clean_text_normalizes_invisible_noise():
    assert clean_text("ｆｕｌｌ\u200bwidth\u2060\ufeff") == "fullwidth"  # NFKC + zero-width
    assert clean_text("a\r\nb\rc") == "a\nb\nc"
    assert clean_text("line   \nnext\t \n") == "line\nnext"
    assert clean_text("a\n\n\n\n\n\nb") == "a\n\n\nb"  # 5 blank lines -> 2
    assert clean_text("a\n\nb") == "a\n\nb"  # one blank line stays
    assert clean_text("\n\n  x") == "  x"


def test_clean_text_keeps_indentation_and_inner_spaces():
    code = "def f(x):\n    if x:\n        return  x  # two spaces\n"
    assert clean_text(code) == code.rstrip("\n")


@settings(deadline=None)  # a loaded CI machine must not turn slowness into a failure
@given(st.text())
def test_clean_text_is_idempotent(s):
    once = clean_text(s)
    assert clean_text(once) == once
    assert "\r" not in once and "\u200b" not in once and "\ufeff" not in once


# ---------------------------------------------------------------- formats


def test_prompt_completion_normalizes_to_messages(tmp_path):
    f = write_lines(tmp_path / "d.jsonl", pc("What is 2+2?", "4", system="Be brief.", task="math",
                                             must_include=["4"]))
    res = load_examples(f)
    assert res.format == "prompt_completion" and not res.problems
    (ex,) = res.examples
    assert ex.messages == [{"role": "system", "content": "Be brief."},
                           {"role": "user", "content": "What is 2+2?"},
                           {"role": "assistant", "content": "4"}]
    assert (ex.prompt, ex.completion, ex.system, ex.line) == ("What is 2+2?", "4", "Be brief.", 1)
    assert ex.prompt_messages == ex.messages[:-1]
    assert ex.meta == {"task": "math", "must_include": ["4"]}


def test_messages_multi_turn_and_mixed_format(tmp_path):
    f = write_lines(tmp_path / "d.jsonl",
                    chat(("user", "hi"), ("assistant", "hello"), ("user", "and?"), ("assistant", "bye")),
                    pc("p", "c"))
    res = load_examples(f)
    assert res.format == "mixed"
    first = res.examples[0]
    assert first.prompt == "and?" and first.completion == "bye" and first.system is None
    assert len(first.prompt_messages) == 3


def test_openai_style_text_parts_are_joined(tmp_path):
    parts = [{"type": "text", "text": "Hello "}, {"type": "text", "text": "world"}]
    f = write_lines(tmp_path / "d.jsonl", {"messages": [{"role": "user", "content": parts},
                                                        {"role": "assistant", "content": "ok"}]})
    assert load_examples(f).examples[0].prompt == "Hello world"


def test_system_prompt_is_added_only_where_missing(tmp_path):
    f = write_lines(tmp_path / "d.jsonl", pc("a", "b"), pc("c", "d", system="own"), pc("e", "f", system=" "))
    exs = load_examples(f, system_prompt="default").examples
    assert [e.system for e in exs] == ["default", "own", "default"]
    assert load_examples(f).examples[2].messages[0]["role"] == "user"  # an empty system is dropped


def test_clean_applies_to_content_and_can_be_disabled(tmp_path):
    f = write_lines(tmp_path / "d.jsonl", pc("ｈｉ\u200b  ", "ok  \r\n"))
    assert load_examples(f).examples[0].prompt == "hi"
    assert load_examples(f, clean=False).examples[0].prompt == "ｈｉ\u200b  "


def test_bom_crlf_and_blank_lines_are_accepted_with_notes(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps(pc("a", "b")).encode() + b"\r\n\r\n\n"
                  + json.dumps(pc("c", "d")).encode() + b"\r\n")
    res = load_examples(f)
    assert [e.prompt for e in res.examples] == ["a", "c"] and not res.problems
    assert res.examples[1].line == 4
    notes = " | ".join(res.notes)
    assert "byte-order mark at the start" in notes and "3 lines end with CRLF" in notes
    assert "2 blank lines skipped" in notes


def test_last_line_without_newline(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps(pc("a", "b")) + "\n" + json.dumps(pc("c", "d")))
    assert len(load_examples(f).examples) == 2


# ---------------------------------------------------------------- line problems

BAD_LINES = [
    ('{"prompt": "a", "completion": "b"', "invalid JSON"),
    ("[1, 2]", "expected a JSON object, got an array"),
    ('"just a string"', "expected a JSON object, got a string"),
    ('{"question": "a", "answer": "b"}', "(found keys: answer, question)"),
    ('{"prompt": "a"}', "missing key 'completion'"),
    ('{"prompt": ["a"], "completion": "b"}', "'prompt' must be a string, got an array"),
    ('{"prompt": "a", "completion": null}', "'completion' must be a string, got null"),
    ('{"prompt": "a", "completion": "b", "system": 3}', "'system' must be a string, got a number"),
    ('{"prompt": "a", "completion": ""}', "empty completion"),
    ('{"prompt": " \\u200b ", "completion": "b"}', "empty prompt"),
    ('{"messages": []}', "'messages' must be a non-empty array"),
    ('{"messages": "hi"}', "'messages' must be a non-empty array"),
    ('{"messages": ["hi"]}', "message 1 must be an object, got a string"),
    ('{"messages": [{"role": "user"}]}', "message 1 has no 'content' key"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]}',
     "message 2 has unknown role 'bot'"),
    ('{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "b"}]}',
     "message 1 (user): 'content' must be a string, got a number"),
    ('{"messages": [{"role": "user", "content": "a"}]}', "no assistant turn"),
    (('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, '
      '{"role": "user", "content": "c"}]}'), "the last message must be the assistant's answer"),
    ('{"messages": [{"role": "assistant", "content": "b"}]}', "no user turn"),
    (('{"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}, '
      '{"role": "assistant", "content": "b"}]}'), "message 2: a system message may only come first"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "  "}]}',
     "empty completion (message 2)"),
    ('{"messages": [], "prompt": "a", "completion": "b"}', "has both 'messages' and 'prompt'"),
    ("[" * 100_000, "invalid JSON"),
]


@pytest.mark.parametrize("line,fragment", BAD_LINES, ids=[f for _, f in BAD_LINES])
def test_each_bad_line_is_a_problem_at_its_line(tmp_path, line, fragment):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps(pc("good", "line")) + "\n" + line + "\n" + json.dumps(pc("x", "y")) + "\n")
    res = load_examples(f)
    assert [e.line for e in res.examples] == [1, 3]  # loading goes on after a bad line
    (problem,) = res.problems
    assert problem.line == 2 and fragment in problem.message
    assert str(problem) == f"{f}:2: {problem.message}"


def test_invalid_utf8_is_a_problem_for_that_line(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_bytes(json.dumps(pc("a", "b")).encode() + b'\n{"prompt": "\xff\xfe", "completion": "c"}\n')
    res = load_examples(f)
    assert len(res.examples) == 1
    assert res.problems[0].line == 2 and "not valid UTF-8 (byte 0xff" in res.problems[0].message


def test_a_huge_line_is_refused_without_reading_it_whole(tmp_path):
    f = tmp_path / "d.jsonl"
    with f.open("w") as fh:
        fh.write(json.dumps(pc("a", "b")) + "\n")
        fh.write(json.dumps(pc("long", "x" * (10 * 1024 * 1024))) + "\n")
        fh.write(json.dumps(pc("c", "d")) + "\n")
    res = load_examples(f)
    assert [e.line for e in res.examples] == [1, 3]
    (problem,) = res.problems
    assert problem.line == 2 and problem.kind == "too_large"
    assert "line is 10.5 MB, over the 2 MB limit" in problem.message
    assert MAX_LINE_BYTES < 10 * 1024 * 1024


# ---------------------------------------------------------------- file problems


@pytest.mark.parametrize("content,fragment", [
    (b"", "is empty"),
    (b"\n  \n\n", "is empty (only blank lines)"),
    (b"\x00\x01\x02binary\x00" * 10, "is binary"),
    ('{"prompt": "a"}'.encode("utf-16"), "UTF-16"),
    (b"\x1f\x8b\x08\x00rest", "gzip archive"),
    (b"PK\x03\x04rest", "zip archive"),
    (b"\x80\xfe\xfd\n\xc3\x28\x80\n", "is not UTF-8 text"),
    (b'[{"title": "x", "mapping": {}}]', "convert-chatgpt"),
    (b'{\n  "data": [{"prompt": "a", "completion": "b"}]\n}\n', "is one JSON object (keys: data), not records"),
    (b"[]", "is an empty JSON array"),
], ids=["empty", "blank", "binary", "utf16", "gzip", "zip", "not-utf8", "chatgpt", "one-object", "empty-array"])
def test_file_level_failures_raise_one_line(tmp_path, content, fragment):
    f = tmp_path / "d.jsonl"
    f.write_bytes(content)
    with pytest.raises(CockpitError) as err:
        load_examples(f)
    assert fragment in err.value.one_line() and "\n" not in err.value.one_line()
    assert err.value.advice


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CockpitError, match="does not exist"):
        load_examples(tmp_path / "nope.jsonl")
    with pytest.raises(CockpitError, match="has no data files"):
        load_examples(tmp_path)  # a directory is a source (of the data files in it)


def test_strict_names_the_first_problem_and_counts_the_rest(tmp_path):
    f = write_lines(tmp_path / "d.jsonl", pc("a", "b"), "{oops", "[1]", '{"prompt": "x"}')
    with pytest.raises(CockpitError) as err:
        load_examples_strict(f)
    line = err.value.one_line()
    assert line.startswith(f"{f}:2: invalid JSON") and "(and 2 more problems)" in line
    assert f"data check {f}" in line


def test_strict_returns_examples_of_a_good_file(tmp_path):
    f = write_lines(tmp_path / "d.jsonl", pc("a", "b"), pc("c", "d"))
    assert [e.completion for e in load_examples_strict(f)] == ["b", "d"]


# ---------------------------------------------------------------- split


def _examples(n: int, dup_every: int = 0) -> list[Example]:
    out = []
    for i in range(n):
        k = i % dup_every if dup_every else i
        out.append(Example([{"role": "user", "content": f"q{k}"},
                            {"role": "assistant", "content": f"a{k}"}], line=i + 1))
    return out


def test_split_is_deterministic_and_sized():
    exs = _examples(40)
    train, evals = split_examples(exs, 0.1, seed=42)
    assert len(evals) == 4 and len(train) == 36
    assert split_examples(exs, 0.1, seed=42) == (train, evals)
    assert split_examples(exs, 0.1, seed=7)[1] != evals
    assert [e.line for e in train] == sorted(e.line for e in train)  # file order kept


def test_split_edge_cases():
    assert split_examples(_examples(5), 0.0, 1) == (_examples(5), [])
    assert split_examples(_examples(1), 0.5, 1) == (_examples(1), [])
    train, evals = split_examples(_examples(2), 0.01, 1)
    assert len(train) == 1 and len(evals) == 1
    with pytest.raises(CockpitError):
        split_examples(_examples(3), 1.0, 1)


def test_split_keeps_duplicates_on_one_side():
    exs = _examples(10, dup_every=3) + [_examples(1)[0]] * 8  # a big group of copies
    train, evals = split_examples(exs, 0.2, seed=3)
    assert evals and train
    assert not {e.key() for e in train} & {e.key() for e in evals}


@settings(deadline=None)
@given(n=st.integers(0, 60), dup=st.integers(0, 5), share=st.floats(0, 0.9), seed=st.integers(0, 99))
def test_split_properties(n, dup, share, seed):
    exs = _examples(n, dup)
    train, evals = split_examples(exs, share, seed)
    assert sorted(e.line for e in train + evals) == [e.line for e in exs]
    assert not {e.key() for e in train} & {e.key() for e in evals}
    distinct = len({e.key() for e in exs})
    if share > 0 and distinct >= 2:
        assert evals and train


# ---------------------------------------------------------------- property tests

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(tmp_path, data):
    f = tmp_path / "d.jsonl"
    f.write_bytes(data)
    try:
        res = load_examples(f)
    except CockpitError as exc:
        assert "\n" not in exc.one_line()
        return
    for p in res.problems:
        assert p.line is not None and 1 <= p.line <= res.lines


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["prompt", "completion", "system", "messages", "role", "content", "x"]) | st.text(max_size=5),
        inner, max_size=4),
    max_leaves=12)


@SETTINGS
@given(st.lists(json_values, min_size=1, max_size=8))
def test_arbitrary_json_lines_never_crash(tmp_path, values):
    f = tmp_path / "d.jsonl"
    f.write_text("".join(json.dumps(v) + "\n" for v in values), encoding="utf-8")
    try:
        res = load_examples(f)
    except CockpitError:
        return
    records = len(values)
    if len(values) == 1 and isinstance(values[0], list) and all(isinstance(v, dict) for v in values[0]):
        records = len(values[0])  # one line holding an array of objects: a JSON array of records
    assert len(res.examples) + len(res.problems) == records
    for ex in res.examples:
        assert ex.messages[-1]["role"] == "assistant" and ex.completion.strip()


text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(str.strip)
valid_example = st.one_of(
    st.builds(lambda p, c, s, m: Example([{"role": "user", "content": p}, {"role": "assistant", "content": c}]
                                         if s is None else
                                         [{"role": "system", "content": s}, {"role": "user", "content": p},
                                          {"role": "assistant", "content": c}],
                                         meta=m, format="prompt_completion"),
              text, text, st.none() | text, st.dictionaries(st.sampled_from(["task", "id"]), text, max_size=2)),
    st.builds(lambda turns: Example([m for p, c in turns for m in ({"role": "user", "content": p},
                                                                    {"role": "assistant", "content": c})]),
              st.lists(st.tuples(text, text), min_size=1, max_size=3)),
)


@SETTINGS
@given(st.lists(valid_example, min_size=1, max_size=6))
def test_valid_examples_round_trip(tmp_path, examples):
    f = tmp_path / "d.jsonl"
    f.write_text("".join(json.dumps(ex.to_json(), ensure_ascii=False) + "\n" for ex in examples),
                 encoding="utf-8")
    res = load_examples(f, clean=False)
    assert not res.problems
    assert [(e.messages, e.meta, e.format) for e in res.examples] == \
           [(e.messages, e.meta, e.format) for e in examples]
    assert [e.line for e in res.examples] == list(range(1, len(examples) + 1))
