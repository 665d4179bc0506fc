"""The bundled Wivel demo dataset keeps the promises data/README.md makes."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from cockpit.paths import DATA_DIR

TRAIN = DATA_DIR / "dsl_train.jsonl"
EVAL = DATA_DIR / "dsl_eval.jsonl"
TASKS = {"explain", "write", "fix"}
ERROR_CODES = [
    "E-GRV-01", "E-AT-02", "E-NOTE-03", "E-FOG-04", "E-EVR-05", "E-TNK-06",
    "E-BED-07", "E-RST-08", "E-DRY-09", "E-DRZ-11", "E-DRZ-12",
]
# One pattern per construct, matched against completions.
CONSTRUCTS = {
    "grove": r"\bgrove \w+ \{",
    "tank": r"wv\.tank\(",
    "bed": r"\bbed b\d+ holds\b",
    "drizzle": r"wv\.drizzle\(",
    "fogpuff": r"wv\.fogpuff\(",
    "rest": r"wv\.rest\(",
    "note": r"wv\.note\(",
    "ifdry": r"\bifdry b\d+ below\b",
    "every": r"\bevery \d+h do\b",
    "at": r"\bat \d\d:\d\d do\b",
}


def _load(path):
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"{path.name}:{number}: blank line"
        rows.append(json.loads(line))  # raises (and fails the test) on invalid JSON
    return rows


@pytest.fixture(scope="module")
def train():
    return _load(TRAIN)


@pytest.fixture(scope="module")
def evals():
    return _load(EVAL)


def test_counts_and_fields(train, evals):
    assert len(train) >= 60
    assert len(evals) >= 15
    for row in train:
        assert set(row) == {"prompt", "completion", "task"}, row
    for row in evals:
        assert set(row) == {"prompt", "completion", "task", "must_include"}, row
    for row in train + evals:
        assert isinstance(row["prompt"], str) and row["prompt"].strip()
        assert isinstance(row["completion"], str) and row["completion"].strip()


def test_task_kinds_are_covered_evenly(train, evals):
    for rows in (train, evals):
        counts = Counter(row["task"] for row in rows)
        assert set(counts) == TASKS
        assert max(counts.values()) - min(counts.values()) <= 1, counts


def test_probe_prompts_are_one_of_each_kind(evals):
    assert [row["task"] for row in evals[:3]] == ["explain", "write", "fix"]


def test_must_include_is_well_formed_and_in_the_reference(evals):
    for row in evals:
        items = row["must_include"]
        assert 2 <= len(items) <= 4, row["prompt"]
        for item in items:
            assert isinstance(item, str) and item.strip()
            assert item.lower() in row["completion"].lower(), (item, row["prompt"])


def test_every_eval_fact_is_taught_in_training(train, evals):
    taught = "\n".join(row["completion"] for row in train).lower()
    missing = [item for row in evals for item in row["must_include"] if item.lower() not in taught]
    assert not missing


def test_each_eval_line_has_an_unguessable_fact(evals):
    invented = re.compile(r"wv\.|E-[A-Z]+-\d\d|\bifdry\b|\bholds\b|\bgrove\b")
    for row in evals:
        assert any(invented.search(item) for item in row["must_include"]), row["prompt"]


def test_must_include_cannot_be_echoed_from_the_question(evals):
    # A base model that repeats the question's words must not earn fact recall.
    for row in evals:
        echoed = [item for item in row["must_include"] if item.lower() in row["prompt"].lower()]
        assert not echoed, (row["prompt"], echoed)


def test_no_eval_prompt_leaks_from_training(train, evals):
    def norm(text):
        return " ".join(text.lower().split())

    train_prompts = {norm(row["prompt"]) for row in train}
    assert not [row["prompt"] for row in evals if norm(row["prompt"]) in train_prompts]
    assert len(train_prompts) == len(train), "duplicate training prompts"


def test_every_construct_is_trained_in_all_three_task_kinds(train):
    for name, pattern in CONSTRUCTS.items():
        kinds = {row["task"] for row in train if re.search(pattern, row["completion"])}
        assert kinds == TASKS, (name, kinds)


def test_every_error_code_is_explained_and_fixed_in_training(train):
    for code in ERROR_CODES:
        kinds = Counter(row["task"] for row in train if code in row["completion"])
        assert kinds["explain"] >= 1 and kinds["fix"] >= 2, (code, kinds)


def test_answers_are_short_and_keep_their_style(train, evals):
    for row in train + evals:
        # 60 words stays under ~80 SmolLM2 tokens for this code-heavy text (measured: max 80).
        assert len(row["completion"].split()) <= 60, row["prompt"]
        if row["task"] == "fix":
            assert re.match(r"Error E-[A-Z]+-\d\d: .+\. Corrected:\n", row["completion"]), row
