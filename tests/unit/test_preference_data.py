"""Preference data (``cockpit/data/preference_formats.py``, ``preference.py``,
``preference_report.py``): every record form parsed and normalized, bad records refused with
their kind, files loaded with file:line problems, a run's config checked for its stage, the
split by prompt, TRL's conversational datasets, the bundled pairs and their generator, the
peer datasets, ``data check`` on preference files, and the answers' token ids.

Tokenizers only, no model weights."""

from __future__ import annotations

import copy
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.config import TrainConfig
from cockpit.data import DataOptions, load_examples
from cockpit.data.formats import detect_format
from cockpit.data.preference import (PAIRED, UNPAIRED, answer_token_ids, check_preference_records, example_tokens,
                                     is_preference_source, load_preference_data, load_preference_examples,
                                     preference_splits, to_unpaired)
from cockpit.data.preference_formats import (FORMS, NOT_PREFERENCE, PreferenceExample, is_preference_record,
                                             label_value, parse_preference_record)
from cockpit.data.preference_report import build_preference_report
from cockpit.data.records import RecordError
from cockpit.errors import CockpitError
from cockpit.data.tokenize import _encode, _render

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"


def _peer_dir() -> Path | None:
    """``shared/peer-data`` beside the checkout (``../shared/peer-data`` from the repository
    root), or inside it where a machine carries ``shared/``; None when absent."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "peer-data"
        if candidate.is_dir():
            return candidate
    return None


PEER = _peer_dir()


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def system(text):
    return {"role": "system", "content": text}


def write_lines(path: Path, *rows) -> Path:
    """One line per row: a dict is written as JSON, a string as it is (a broken line)."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def pair(prompt, chosen="good answer", rejected="bad answer", **kw):
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, **kw}


def labelled(prompt, completion, label):
    return {"prompt": prompt, "completion": completion, "label": label}


def config(data, stage="dpo", **kw) -> TrainConfig:
    return TrainConfig(stage=stage, data=str(data), eval_data=kw.pop("eval_data", None), **kw)


# -- 1. every form, normalized ----------------------------------------------------------

# form -> (record, the PreferenceExample it normalizes to)
FORM_CASES = {
    "trl-standard": (
        {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5", "system": "Be brief."},
        PreferenceExample(prompt=[system("Be brief."), user("What is 2+2?")], chosen="4", rejected="5")),
    "trl-conversational": (
        {"prompt": [system("You count."), user("What is 2+2?")], "chosen": [assistant("4")],
         "rejected": assistant("5")},  # a single message object is accepted for an answer
        PreferenceExample(prompt=[system("You count."), user("What is 2+2?")], chosen="4", rejected="5")),
    "trl-implicit": (
        {"chosen": [user("Hi"), assistant("Hello!"), user("What is 2+2?"), assistant("4")],
         "rejected": [user("Hi"), assistant("Hello!"), user("What is 2+2?"), assistant("22")]},
        PreferenceExample(prompt=[user("Hi"), assistant("Hello!"), user("What is 2+2?")], chosen="4",
                          rejected="22")),
    "sharegpt": (
        {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "What is 2+2?"}],
         "chosen": {"from": "gpt", "value": "4"}, "rejected": {"from": "gpt", "value": "5"}},
        PreferenceExample(prompt=[system("Be brief."), user("What is 2+2?")], chosen="4", rejected="5")),
    "kto-standard": (
        {"prompt": "What is 2+2?", "completion": "4", "label": "true", "system": "Be brief."},
        PreferenceExample(prompt=[system("Be brief."), user("What is 2+2?")], completion="4", label=True)),
    "kto-conversational": (
        {"prompt": [user("What is 2+2?")], "completion": [assistant("5")], "label": False},
        PreferenceExample(prompt=[user("What is 2+2?")], completion="5", label=False)),
    "kto-messages": (
        {"messages": [system("Be brief."), user("What is 2+2?"), assistant("5")], "label": "False"},
        PreferenceExample(prompt=[system("Be brief."), user("What is 2+2?")], completion="5", label=False)),
    "kto-sharegpt": (
        {"conversations": [{"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "4"}],
         "label": True},
        PreferenceExample(prompt=[user("What is 2+2?")], completion="4", label=True)),
}


def test_the_cases_cover_every_form():
    assert set(FORM_CASES) == set(FORMS)


@pytest.mark.parametrize("form", FORMS)
def test_every_form_is_detected_and_normalized(form):
    record, expected = FORM_CASES[form]
    got_form, ex = parse_preference_record(copy.deepcopy(record))
    assert got_form == form
    assert ex == expected
    assert ex.kind == (PAIRED if expected.chosen is not None else UNPAIRED)
    assert ex.prompt[-1]["role"] == "user"
    assert ex.prompt_text() == "What is 2+2?"
    assert is_preference_record(record)


def test_a_sharegpt_pair_takes_its_system_key_into_the_prompt():
    form, ex = parse_preference_record({"conversations": [{"from": "human", "value": "Q?"}], "system": "Sys",
                                        "chosen": {"from": "gpt", "value": "A"},
                                        "rejected": {"from": "gpt", "value": "B"}})
    assert form == "sharegpt" and ex.prompt == [system("Sys"), user("Q?")]


@pytest.mark.parametrize("text,value", [("true", True), ("false", False), (" TRUE ", True), ("False", False),
                                        (True, True), (False, False)])
def test_a_label_is_a_boolean_or_its_text(text, value):
    assert label_value(text) is value
    _, ex = parse_preference_record(labelled("Q?", "A", text))
    assert ex.label is value and ex.kind == UNPAIRED and ex.answers() == ["A"]


@pytest.mark.parametrize("value", ["maybe", "yes", 1, 0, None])
def test_anything_else_is_no_label(value):
    assert label_value(value) is None


def test_a_system_prompt_option_is_added_only_where_there_is_none():
    _, ex = parse_preference_record(pair("Q?"), system_prompt="Be kind.")
    assert ex.prompt == [system("Be kind."), user("Q?")]
    _, ex = parse_preference_record(pair("Q?", system="Be brief."), system_prompt="Be kind.")
    assert ex.prompt == [system("Be brief."), user("Q?")]


def test_columns_rename_the_keys_of_a_pair():
    form, ex = parse_preference_record({"question": "Q?", "good": "A", "bad": "B"},
                                       columns={"prompt": "question", "chosen": "good", "rejected": "bad"})
    assert form == "trl-standard" and (ex.prompt, ex.chosen, ex.rejected) == ([user("Q?")], "A", "B")


# -- 2. bad records ---------------------------------------------------------------------

BAD_RECORDS = {
    "chosen-only": (pair("Q?", rejected=None), "keys", "has 'chosen' but no 'rejected'"),
    "rejected-only": (pair("Q?", chosen=None), "keys", "has 'rejected' but no 'chosen'"),
    "pair-and-label": (pair("Q?", label=True), "keys", "has both chosen/rejected and a 'label'"),
    "identical": (pair("Q?", "same", "same"), "identical", "chosen and rejected are the same answer"),
    "identical-after-cleaning": (pair("Q?", "same  ", "same"), "identical", "the same answer"),
    "empty-chosen": (pair("Q?", chosen=""), "empty", "empty chosen answer"),
    "blank-rejected": (pair("Q?", rejected="   "), "empty", "empty rejected answer"),
    "empty-completion": (labelled("Q?", "", True), "empty", "empty completion"),
    "empty-prompt": (pair(""), "empty", "empty prompt"),
    "prompt-ends-with-assistant": ({"prompt": [user("Q?"), assistant("A")], "chosen": "B", "rejected": "C"},
                                   "structure", "the prompt must end with a user turn, got 'assistant'"),
    "implicit-prompts-differ": ({"chosen": [user("Q1?"), assistant("A")], "rejected": [user("Q2?"), assistant("B")]},
                                "structure", "chosen and rejected differ before their last answer"),
    "text-answers-without-prompt": ({"chosen": "A", "rejected": "B"}, "keys", "missing key 'prompt'"),
    "sft-prompt-completion": ({"prompt": "Q?", "completion": "A"}, NOT_PREFERENCE, "not a preference record"),
    "sft-messages": ({"messages": [user("Q?"), assistant("A")]}, NOT_PREFERENCE, "not a preference record"),
    "label-maybe": (labelled("Q?", "A", "maybe"), "type", "'label' must be true or false, got 'maybe'"),
    "messages-end-with-user": ({"messages": [user("Q?")], "label": True}, "structure",
                               "the last turn of 'messages' must be the assistant's answer"),
    "answer-of-the-user": (pair("Q?", chosen=[user("A")]), "role", "'chosen' must be the assistant's answer"),
    "not-an-object": (["a", "list"], "type", "expected a JSON object"),
}


@pytest.mark.parametrize("name", list(BAD_RECORDS))
def test_bad_records_are_refused_with_their_kind(name):
    record, kind, message = BAD_RECORDS[name]
    with pytest.raises(RecordError) as info:
        parse_preference_record(record)
    assert info.value.kind == kind
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_plain_record_names_the_keys_it_has():
    with pytest.raises(RecordError, match=r"found keys: completion, prompt\)"):
        parse_preference_record({"prompt": "Q?", "completion": "A"})
    assert not is_preference_record({"prompt": "Q?", "completion": "A"})
    assert not is_preference_record({"prompt": "Q?", "completion": "A", "label": "maybe"})


@pytest.mark.parametrize("form", FORMS)
def test_supervised_loading_refuses_every_preference_form(form):
    """The other side of the fence: ``detect_format`` (stage=sft) refuses preference records
    rather than train on the rejected or undesirable answers (boolean labels here)."""
    record = copy.deepcopy(FORM_CASES[form][0])
    if "label" in record:
        record["label"] = label_value(record["label"])
    with pytest.raises(RecordError) as info:
        detect_format(record)
    assert info.value.kind == "preference"
    assert "stage=dpo" in str(info.value) and "stage=kto" in str(info.value)


def test_supervised_loading_refuses_kto_labels_given_as_text(tmp_path):
    path = tmp_path / "kto.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["prompt", "completion", "label"])
        w.writerows([["Q1?", "good answer", "true"], ["Q2?", "bad answer", "false"]])
    assert is_preference_source(str(path))  # data check reports it as KTO data
    result = load_examples(path)  # what stage=sft trains on
    assert not result.examples
    assert [p.kind for p in result.problems] == ["preference", "preference"]


# -- 3. loading files -------------------------------------------------------------------

def test_loading_goes_on_after_bad_lines_and_names_file_and_line(tmp_path):
    f = write_lines(tmp_path / "p.jsonl", pair("Q1?"), "{broken", pair("Q2?", rejected=None), "",
                    pair("Q3?", "x", "x"), pair("Q4?"))
    load = load_preference_examples(str(f), DataOptions())
    assert [(p.where, p.kind) for p in load.problems] == [(f"{f}:2", "json"), (f"{f}:3", "keys"),
                                                          (f"{f}:5", "identical")]
    assert [(p.path, p.line) for p in load.problems] == [(str(f), 2), (str(f), 3), (str(f), 5)]
    assert str(load.problems[1]) == f"{f}:3: has 'chosen' but no 'rejected': a pair needs both answers"
    assert [ex.where for ex in load.examples] == [f"{f}:1", f"{f}:6"]
    assert [ex.prompt_text() for ex in load.examples] == ["Q1?", "Q4?"]
    assert (load.format, load.pairs, load.good, load.bad) == ("pairs", 2, 0, 0)
    assert load.lines == 6 and load.forms == {"trl-standard": 2}


def test_format_is_pairs_unpaired_mixed_or_none(tmp_path):
    def fmt(*rows):
        return load_preference_examples(str(write_lines(tmp_path / "f.jsonl", *rows)), DataOptions()).format

    assert fmt(pair("Q1?"), pair("Q2?")) == "pairs"
    assert fmt(labelled("Q1?", "A", True), labelled("Q2?", "B", False)) == "unpaired"
    assert fmt(pair("Q1?"), labelled("Q2?", "B", False)) == "mixed"
    assert fmt({"prompt": "Q?", "completion": "A"}) == "none"


def test_forms_are_counted_per_record(tmp_path):
    rows = [FORM_CASES["sharegpt"][0], FORM_CASES["trl-standard"][0], FORM_CASES["sharegpt"][0],
            FORM_CASES["kto-messages"][0], FORM_CASES["kto-sharegpt"][0], FORM_CASES["trl-implicit"][0]]
    load = load_preference_examples(str(write_lines(tmp_path / "m.jsonl", *rows)), DataOptions())
    assert not load.problems
    assert load.forms == {"sharegpt": 2, "trl-standard": 1, "kto-messages": 1, "kto-sharegpt": 1, "trl-implicit": 1}
    assert (load.format, load.pairs, load.good, load.bad) == ("mixed", 4, 1, 1)


def test_a_kto_csv_with_text_labels_loads(tmp_path):
    path = tmp_path / "kto.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["prompt", "completion", "label"])
        w.writerows([["Q1?", "good", "true"], ["Q2?", "bad", "false"], ["Q3?", "good", "True"]])
    load = load_preference_examples(str(path), DataOptions())
    assert not load.problems
    assert (load.format, load.forms, load.good, load.bad) == ("unpaired", {"kto-standard": 3}, 2, 1)
    assert [ex.where for ex in load.examples] == [f"{path}:2", f"{path}:3", f"{path}:4"]


def test_preference_sources_are_told_from_supervised_ones(tmp_path):
    assert is_preference_source(str(write_lines(tmp_path / "p.jsonl", pair("Q1?"), pair("Q2?"))))
    assert not is_preference_source(str(write_lines(tmp_path / "s.jsonl", {"prompt": "Q", "completion": "A"})))
    assert not is_preference_source(str(tmp_path / "missing.jsonl"))


# -- 4. a run's config, checked for its stage -------------------------------------------

def _check_error(cfg) -> CockpitError:
    with pytest.raises(CockpitError) as info:
        check_preference_records(cfg)
    assert "\n" not in info.value.message and "\n" not in info.value.one_line()
    return info.value


def test_plain_supervised_data_is_refused_for_dpo(tmp_path):
    f = write_lines(tmp_path / "sft.jsonl", {"prompt": "Q1?", "completion": "A"}, {"prompt": "Q2?", "completion": "B"})
    err = _check_error(config(f, "dpo"))
    assert err.message.startswith(f"data {f} has no preference pairs ({f}:1:")
    assert "stage=dpo" in err.message
    assert "stage=sft" in err.advice


def test_kto_data_is_refused_for_dpo_suggesting_kto(tmp_path):
    f = write_lines(tmp_path / "kto.jsonl", labelled("Q1?", "A", True), labelled("Q2?", "B", False))
    err = _check_error(config(f, "dpo"))
    assert err.message == f"stage=dpo needs pairs (chosen and rejected); {f} holds answers labelled good/bad"
    assert err.advice == "use stage=kto, or pair them"
    check_preference_records(config(f, "kto"))  # what it is for


def test_labelled_answers_among_pairs_are_refused_for_dpo_naming_the_first(tmp_path):
    f = write_lines(tmp_path / "mixed.jsonl", pair("Q1?"), labelled("Q2?", "B", False), pair("Q3?"))
    err = _check_error(config(f, "orpo"))
    assert f"(the first at {f}:2)" in err.message and "stage=kto" in err.one_line()


def test_a_bad_line_is_refused_naming_file_and_line(tmp_path):
    f = write_lines(tmp_path / "p.jsonl", pair("Q1?"), pair("Q2?"), pair("Q3?", "x", "x"), "{broken")
    err = _check_error(config(f, "dpo"))
    assert err.message == (f"{f}:3: chosen and rejected are the same answer: the pair teaches nothing "
                           "(and 1 more problem)")
    assert f"data check {f}" in err.advice


def test_kto_accepts_pairs(tmp_path):
    f = write_lines(tmp_path / "p.jsonl", pair("Q1?"), pair("Q2?"))
    check_preference_records(config(f, "kto"))
    check_preference_records(config(f, "dpo"))


def test_eval_data_is_checked_too(tmp_path):
    train = write_lines(tmp_path / "train.jsonl", pair("Q1?"), pair("Q2?"))
    plain = write_lines(tmp_path / "eval.jsonl", {"prompt": "Q3?", "completion": "A"})
    err = _check_error(config(train, "dpo", eval_data=str(plain)))
    assert err.message.startswith(f"eval_data {plain} has no preference pairs")
    bad = write_lines(tmp_path / "eval_bad.jsonl", pair("Q3?"), pair("Q4?", chosen=""))
    assert _check_error(config(train, "dpo", eval_data=str(bad))).message.startswith(f"{bad}:2: empty chosen answer")


def test_an_empty_file_is_refused(tmp_path):
    f = tmp_path / "empty.jsonl"
    f.write_text("\n", encoding="utf-8")
    _check_error(config(f, "dpo"))


# -- 5. to_unpaired and the split by prompt ---------------------------------------------

def test_to_unpaired_makes_a_good_and_a_bad_answer_of_each_pair(tmp_path):
    f = write_lines(tmp_path / "p.jsonl", pair("Q1?", "A1", "B1"), labelled("Q2?", "C2", False),
                    pair("Q3?", "A3", "B3", system="S"))
    examples = load_preference_examples(str(f), DataOptions()).examples
    out = to_unpaired(examples)
    assert [(ex.prompt_text(), ex.completion, ex.label, ex.line) for ex in out] == [
        ("Q1?", "A1", True, 1), ("Q1?", "B1", False, 1), ("Q2?", "C2", False, 2),
        ("Q3?", "A3", True, 3), ("Q3?", "B3", False, 3)]
    assert all(ex.kind == UNPAIRED and ex.chosen is None and ex.rejected is None for ex in out)
    assert out[3].prompt == out[4].prompt == [system("S"), user("Q3?")]
    assert all(ex.path == str(f) for ex in out)
    assert out[2] is examples[1]  # labelled answers stay as they are


def _shared_prompts_file(tmp_path, prompts=10, per_prompt=3) -> tuple[Path, int]:
    rows = [pair(f"Question {p}?", f"right {p}.{k}", f"wrong {p}.{k}") for k in range(per_prompt)
            for p in range(prompts)]  # a prompt's pairs spread over the file
    return write_lines(tmp_path / "shared.jsonl", *rows), prompts * per_prompt


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_the_split_keeps_every_prompt_on_one_side(tmp_path, seed):
    f, total = _shared_prompts_file(tmp_path)
    cfg = config(f, "dpo", eval_split=0.3, seed=seed)
    train, held = preference_splits(cfg)
    assert train and held and len(train) + len(held) == total
    train_prompts = {ex.prompt_key() for ex in train}
    held_prompts = {ex.prompt_key() for ex in held}
    assert not train_prompts & held_prompts
    assert len(held) % 3 == 0 and len(held) == 3 * len(held_prompts)  # every pair of a held prompt is held
    assert 0.1 <= len(held) / total <= 0.5
    assert preference_splits(cfg) == (train, held)  # deterministic


def test_eval_data_is_the_held_out_set_when_given(tmp_path):
    f, total = _shared_prompts_file(tmp_path)
    other = write_lines(tmp_path / "eval.jsonl", pair("Elsewhere?"))
    train, held = preference_splits(config(f, "dpo", eval_data=str(other), eval_split=0.3))
    assert len(train) == total and [ex.prompt_text() for ex in held] == ["Elsewhere?"]


def test_no_split_with_eval_split_zero(tmp_path):
    f, total = _shared_prompts_file(tmp_path)
    train, held = preference_splits(config(f, "dpo", eval_split=0.0))
    assert len(train) == total and held == []


# -- 6. the datasets a run trains on ----------------------------------------------------

def _is_messages(value, roles=None):
    ok = isinstance(value, list) and all(isinstance(m, dict) and set(m) == {"role", "content"} for m in value)
    return ok and (roles is None or [m["role"] for m in value] == roles)


def test_dpo_datasets_are_conversational_pairs(tmp_path, bundled_tokenizer):
    f, total = _shared_prompts_file(tmp_path)
    data = load_preference_data(config(f, "dpo", eval_split=0.3, max_length=512), bundled_tokenizer)
    assert data.train.column_names == ["prompt", "chosen", "rejected"]
    assert data.eval is not None and data.eval.column_names == ["prompt", "chosen", "rejected"]
    row = data.train[0]
    assert _is_messages(row["prompt"], ["user"]) and row["prompt"][0]["content"].startswith("Question ")
    assert _is_messages(row["chosen"], ["assistant"]) and row["chosen"][0]["content"].startswith("right ")
    assert _is_messages(row["rejected"], ["assistant"]) and row["rejected"][0]["content"].startswith("wrong ")
    s = data.stats
    assert s.format == "pairs"
    assert (s.train_examples, s.eval_examples, s.examples) == (len(data.train), len(data.eval), total)
    assert s.eval_examples > 0 and s.truncated == 0
    assert s.prompt_tokens > 0 and s.answer_tokens > 0 and 0 < s.learned_share < 1
    held = {r["prompt"][0]["content"] for r in data.eval}
    assert held and not held & {r["prompt"][0]["content"] for r in data.train}
    assert set(data.probes) <= held


def test_kto_datasets_are_labelled_answers(tmp_path, bundled_tokenizer):
    f, total = _shared_prompts_file(tmp_path)
    data = load_preference_data(config(f, "kto", eval_split=0.3, max_length=512), bundled_tokenizer)
    assert data.train.column_names == ["prompt", "completion", "label"]
    assert data.eval is not None and data.eval.column_names == ["prompt", "completion", "label"]
    rows = data.train.to_list()
    assert all(_is_messages(r["prompt"], ["user"]) and _is_messages(r["completion"], ["assistant"]) for r in rows)
    assert all(isinstance(r["label"], bool) for r in rows)
    assert all(r["label"] == r["completion"][0]["content"].startswith("right ") for r in rows)
    assert sum(r["label"] for r in rows) * 2 == len(rows)  # each pair: one good, one bad
    s = data.stats
    assert s.format == "unpaired"
    assert (s.train_examples, s.eval_examples) == (len(data.train), len(data.eval))
    assert s.examples == 2 * total  # a pair counts twice for KTO


def test_a_tiny_max_length_counts_truncated_examples(tmp_path, bundled_tokenizer):
    f = write_lines(tmp_path / "p.jsonl", pair("Short?", "a", "b"), pair("Long? " * 30, "a", "b"),
                    pair("Other?", "c", "d"))
    prompt_n, answers = example_tokens(load_preference_examples(str(f), DataOptions()).examples[0],
                                       bundled_tokenizer)
    max_length = prompt_n + max(answers)  # the short pairs fit exactly, the long one does not
    data = load_preference_data(config(f, "dpo", eval_split=0.0, max_length=max_length), bundled_tokenizer)
    assert (data.stats.train_examples, data.stats.eval_examples, data.stats.truncated) == (3, 0, 1)
    assert data.eval is None
    data = load_preference_data(config(f, "dpo", eval_split=0.0, max_length=4), bundled_tokenizer)
    assert data.stats.truncated == 3


def test_load_preference_data_refuses_bad_data_as_the_check_does(tmp_path, bundled_tokenizer):
    f = write_lines(tmp_path / "p.jsonl", pair("Q1?"), labelled("Q2?", "A", True))
    with pytest.raises(CockpitError, match="stage=dpo needs pairs"):
        load_preference_data(config(f, "dpo", eval_split=0.0), bundled_tokenizer)


# -- 7. the bundled pairs ---------------------------------------------------------------

def _prompts(load):
    return {ex.prompt_key() for ex in load.examples}


def test_the_bundled_pairs():
    train = load_preference_examples(str(DATA / "dsl_pref_train.jsonl"), DataOptions())
    held = load_preference_examples(str(DATA / "dsl_pref_eval.jsonl"), DataOptions())
    assert (train.pairs, train.format, train.forms, train.problems) == (72, "pairs", {"trl-standard": 72}, [])
    assert (held.pairs, held.format, held.forms, held.problems) == (21, "pairs", {"trl-standard": 21}, [])
    assert not _prompts(held) & _prompts(train)
    assert all(ex.chosen != ex.rejected for ex in train.examples + held.examples)


def test_the_bundled_pairs_check_for_every_preference_stage():
    for stage in ("dpo", "orpo", "kto"):
        check_preference_records(config(DATA / "dsl_pref_train.jsonl", stage,
                                        eval_data=str(DATA / "dsl_pref_eval.jsonl")))


def test_the_bundled_pairs_are_what_the_script_writes(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(DATA / "make_preference_pairs.py"), "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for name, count in (("dsl_pref_train.jsonl", 72), ("dsl_pref_eval.jsonl", 21)):
        assert (out / name).read_bytes() == (DATA / name).read_bytes(), f"{name} differs from what the script writes"
        assert f"wrote {count} pairs to {out / name}" in result.stdout


def test_the_bundled_chosen_answers_are_the_supervised_completions():
    for sft, pref in (("dsl_train.jsonl", "dsl_pref_train.jsonl"), ("dsl_eval.jsonl", "dsl_pref_eval.jsonl")):
        completions = [json.loads(ln) for ln in (DATA / sft).read_text(encoding="utf-8").splitlines() if ln.strip()]
        pairs = [json.loads(ln) for ln in (DATA / pref).read_text(encoding="utf-8").splitlines() if ln.strip()]
        assert [(p["prompt"], p["chosen"]) for p in pairs] == [(c["prompt"], c["completion"]) for c in completions]


# -- 8. the peer datasets (LLaMA-Factory's demos) ---------------------------------------

@pytest.mark.parametrize("name,fmt,form,counts", [
    ("dpo_en_demo.json", "pairs", "sharegpt", (100, 0, 0)),
    ("kto_en_demo.json", "unpaired", "kto-messages", (0, 54, 46)),
])
def test_the_peer_preference_datasets_load_without_problems(name, fmt, form, counts):
    if PEER is None or not (PEER / name).is_file():
        pytest.skip(f"shared/peer-data/{name} is not on this machine")
    load = load_preference_examples(str(PEER / name), DataOptions())
    assert load.problems == []
    assert load.format == fmt and load.forms == {form: 100}
    assert (load.pairs, load.good, load.bad) == counts
    assert all(ex.prompt[-1]["role"] == "user" for ex in load.examples)
    assert is_preference_source(str(PEER / name))


# -- 9. data check ----------------------------------------------------------------------

@pytest.fixture()
def cli(monkeypatch, bundled_tokenizer):
    """``llm-cockpit`` in-process, with the session's bundled tokenizer and no CPU yielding
    (which would set thread variables for the rest of the session)."""
    import cockpit.cli.data
    import cockpit.training.cpu_share
    from cockpit.cli.main import main

    monkeypatch.setattr(cockpit.training.cpu_share, "yield_to_trainer", lambda: False)
    monkeypatch.setattr(cockpit.cli.data, "load_tokenizer_for", lambda model: bundled_tokenizer)
    return main


def test_data_check_reports_preference_pairs(cli, capsys):
    f = DATA / "dsl_pref_eval.jsonl"
    assert cli(["data", "check", str(f)]) == 0
    out = capsys.readouterr().out
    assert f"{f}: 21 pairs from 21 lines (preference data: pairs; forms: 21 trl-standard)" in out
    assert "train with stage=dpo" in out
    assert "tokens per sequence (prompt + answer)" in out
    assert "chosen:" in out and "rejected:" in out
    assert out.rstrip().endswith("OK")


def test_data_check_json_of_preference_pairs(cli, capsys):
    assert cli(["data", "check", str(DATA / "dsl_pref_eval.jsonl"), "--json", "--model", "none"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["ok"], doc["kind"], doc["format"], doc["pairs"], doc["problem_count"]) == \
        (True, "preference", "pairs", 21, 0)
    assert "stage=dpo" in doc["train_with"]


def test_data_check_names_a_bad_line_and_fails(cli, capsys, tmp_path):
    f = write_lines(tmp_path / "p.jsonl", pair("Q1?"), pair("Q2?"), pair("Q3?", rejected=None), pair("Q4?"))
    assert cli(["data", "check", str(f), "--model", "none"]) == 1
    out = capsys.readouterr().out
    assert f"{f}:3: has 'chosen' but no 'rejected': a pair needs both answers" in out
    assert f"{f}: 3 pairs from 4 lines" in out
    assert out.rstrip().endswith("NOT OK: 1 problem")


def test_data_check_of_labelled_answers_suggests_kto(cli, capsys, tmp_path):
    f = write_lines(tmp_path / "k.jsonl", labelled("Q1?", "A", True), labelled("Q2?", "B", False),
                    labelled("Q3?", "C", "true"))
    assert cli(["data", "check", str(f), "--model", "none"]) == 0
    out = capsys.readouterr().out
    assert "3 answers (2 good, 1 bad)" in out and "train with stage=kto" in out
    assert "(an answer labelled bad)" in out


def test_preference_report_measures_too_long_pairs(tmp_path, bundled_tokenizer):
    f = write_lines(tmp_path / "p.jsonl", pair("Short?", "a", "b"), pair("Long? " * 60, "a", "b"))
    report = build_preference_report(str(f), tokenizer=bundled_tokenizer, max_length=100)
    assert report.ok and report.too_long == [2]
    assert report.token_stats["min"] <= report.token_stats["max"]
    assert report.to_dict()["too_long"] == {"max_length": 100, "count": 1, "lines": [2]}


# -- 10. the answers' token ids ---------------------------------------------------------

@pytest.mark.parametrize("record", [pair("What is 2+2?", "It is 4.", "It is 5."),
                                    FORM_CASES["trl-implicit"][0], FORM_CASES["kto-messages"][0]],
                         ids=["pair", "multi-turn", "labelled-with-system"])
def test_answer_ids_follow_the_prompt_ids(record, bundled_tokenizer):
    t = bundled_tokenizer
    _, ex = parse_preference_record(record)
    prompt_ids, answers = answer_token_ids(ex, t)
    assert len(answers) == len(ex.answers())
    for text, ids in zip(ex.answers(), answers):
        full = _encode(t, _render(t, [*ex.prompt, assistant(text)], gen_prompt=False))
        assert full[:len(prompt_ids)] == prompt_ids  # the prompt is a prefix of the whole conversation
        assert prompt_ids + ids == full
        assert text in t.decode(ids)
        assert t.decode(ids).strip().endswith("<|im_end|>")  # the end of turn belongs to the answer
    assert example_tokens(ex, t) == (len(prompt_ids), [len(a) for a in answers])


def test_answer_ids_without_a_chat_template(bundled_tokenizer):
    t = copy.deepcopy(bundled_tokenizer)
    t.chat_template = None
    _, ex = parse_preference_record(pair("What is 2+2?", "It is 4.", "It is 5."))
    prompt_ids, answers = answer_token_ids(ex, t)
    assert t.decode(prompt_ids).endswith("What is 2+2?\n")
    assert answers == [_encode(t, "It is 4.") + [t.eos_token_id], _encode(t, "It is 5.") + [t.eos_token_id]]
