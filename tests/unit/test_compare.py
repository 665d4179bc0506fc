"""Comparing runs (cockpit/evaluation/compare.py and ``llm-cockpit compare``), on recorded runs.

The runs (tests/recorded_runs.py) are written the way the trainer writes them, with fixed
numbers, so every expectation below can be worked out by hand.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cockpit.cli.main import main
from cockpit.evaluation.compare import HIGHER, LOWER, better, best_indexes, compare_runs
from cockpit.errors import CockpitError
from cockpit.run.status import write_status
from cockpit.run.atomic import atomic_write_json
from tests.recorded_runs import FAST, GIB, SLOW, record_run, two_recorded_runs


@pytest.fixture()
def two_runs(tmp_path) -> tuple[Path, Path]:
    return two_recorded_runs(tmp_path / "runs")


def test_the_settings_that_differ_and_only_those(two_runs):
    result = compare_runs(two_runs)
    rows = {row.key: row.values for row in result.settings}
    assert rows == {"lr": [1e-3, 2e-4], "lora_r": [16, 8], "lora_alpha": [32, 16]}
    assert [r.letter for r in result.runs] == ["A", "B"]
    assert [r.name for r in result.runs] == [FAST, SLOW]


def test_both_curves_of_both_runs_by_step_and_by_tokens(two_runs):
    result = compare_runs(two_runs)
    for run in result.runs:
        loss, evals = run.curves["loss"], run.curves["eval_loss"]
        assert loss.steps == [float(s) for s in range(1, 41)]
        assert loss.tokens == [s * 500.0 for s in range(1, 41)]  # what the step events carry
        assert evals.steps == [10.0, 20.0, 30.0, 40.0]
        assert evals.tokens == [5000.0, 10000.0, 15000.0, 20000.0]  # the tokens of the step the eval followed
        assert run.tokens_source == "recorded"
    xs, ys = result.runs[0].curves["loss"].points("tokens")
    assert xs[0] == 500.0 and ys[0] == pytest.approx(0.6 + 2.5 * math.exp(-0.1))


def test_the_best_run_of_each_row_is_marked_the_right_way(two_runs):
    rows = {row.key: row for row in compare_runs(two_runs).metrics}
    # A falls five times faster: it ends at 0.6 + 2.5 e^-4, B (floor 0.4) only at 0.4 + 2.5 e^-0.8
    assert rows["final_loss"].values == pytest.approx([0.6 + 2.5 * math.exp(-4), 0.4 + 2.5 * math.exp(-0.8)])
    assert rows["final_loss"].best == [0] and rows["final_loss"].better == LOWER
    assert rows["best_loss"].best == [0]
    assert rows["best_eval_loss"].values == pytest.approx([0.8 + 2.5 * math.exp(-4), 0.6 + 2.5 * math.exp(-0.8)])
    assert rows["best_eval_loss"].best == [0]
    # B is the faster and smaller one

    assert rows["tokens_per_s"].values == [250.0, 500.0] and rows["tokens_per_s"].best == [1]
    assert rows["tokens_per_s"].better == HIGHER
    assert rows["peak_mem"].values == [3.0 * GIB, 2.5 * GIB] and rows["peak_mem"].best == [1]
    assert rows["wall_s"].values == [80.0, 40.0] and rows["wall_s"].best == [1]
    assert rows["steps"].values == [40.0, 40.0] and rows["steps"].best == []  # a count: no winner
    assert rows["peak_mem"].cells == ["3.0 GiB", "2.5 GiB"]


def test_eval_json_metrics_are_read_generically_nested_sections_included(two_runs):
    fast, slow = two_runs
    atomic_write_json(fast / "eval.json", {
        "version": 1, "created": 1.0, "data": "x", "max_new_tokens": 96,
        "finetuned": {"model": "m", "metrics": {"exact_match": 0.25, "perplexity": 3.0, "examples": 21},
                      "examples": [{"prompt": "p", "scores": {"bleu": 1.0}}]},
        "baseline": {"model": "base", "metrics": {"exact_match": 0.0}},
        "regression": {"general": {"perplexity": 12.0, "accuracy": 0.5}, "tasks": ["a"]}})
    atomic_write_json(slow / "eval.json", {
        "version": 1, "finetuned": {"model": "m", "metrics": {"exact_match": 0.5, "perplexity": 4.0, "examples": 21}},
        "regression": {"general": {"perplexity": 10.0, "accuracy": 0.5}}})
    rows = {row.key: row for row in compare_runs(two_runs).metrics}
    assert rows["eval.exact_match"].values == [0.25, 0.5] and rows["eval.exact_match"].best == [1]
    assert rows["eval.perplexity"].best == [0]
    assert rows["eval.examples"].best == []
    assert rows["regression.general.perplexity"].best == [1]
    assert rows["regression.general.accuracy"].best == []  # a tie is no winner
    assert not any(k.startswith(("baseline", "version", "created")) or "bleu" in k for k in rows)


def test_which_way_is_better():
    lower = ["final_loss", "best_eval_loss", "eval.perplexity", "peak_mem", "wall_s", "regression.forgetting"]
    higher = ["tokens_per_s", "eval.exact_match", "eval.rouge1_f1", "eval.bleu", "eval.fact_recall",
              "eval.token_jaccard", "regression.general.accuracy"]
    assert [better(k) for k in lower] == [LOWER] * len(lower)
    assert [better(k) for k in higher] == [HIGHER] * len(higher)
    assert [better(k) for k in ("steps", "tokens", "eval.examples", "regression.perplexity_change")] == [None] * 4
    assert best_indexes([2.0, 1.0, 1.0], LOWER) == [1, 2]
    assert best_indexes([2.0, None], LOWER) == []
    assert best_indexes([float("inf"), 3.0, 5.0], LOWER) == [1]


def test_tokens_are_derived_from_tokens_per_s_when_steps_carry_none(tmp_path, two_runs):
    old = record_run(tmp_path / "runs", "2026-12-02_08-00-00-old", lr=1e-3, lora_r=16, with_tokens=False)
    result = compare_runs([two_runs[0], old])
    side = result.runs[1]
    assert side.tokens_source == "derived"
    assert side.curves["loss"].tokens[:3] == [500.0, 1000.0, 1500.0]  # 250 tokens/s x 2 s per step
    assert any(n.startswith("B: tokens seen are derived") for n in result.notes)


def test_compare_json_through_the_cli(two_runs, capsys):
    fast, slow = two_runs
    assert main(["compare", str(fast), str(slow), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["key"] for s in out["settings"]] == ["lr", "lora_r", "lora_alpha"]
    assert [r["name"] for r in out["runs"]] == [FAST, SLOW]
    for run in out["runs"]:
        assert len(run["curves"]["loss"]["steps"]) == 40 and len(run["curves"]["loss"]["tokens"]) == 40
        assert run["curves"]["eval_loss"]["values"]
    final = next(m for m in out["metrics"] if m["key"] == "final_loss")
    assert final["best"] == [0] and final["better"] == "lower"


def test_compare_finds_runs_by_name_from_the_runs_directory(two_runs, capsys, monkeypatch):
    root = two_runs[0].parent
    assert main(["compare", FAST, "2026-12-01_12", "--output-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "settings that differ" in out and "lora_r" in out and "final train loss" in out
    assert "--json" in out
    assert max(len(line) for line in out.splitlines()) <= 80  # a plain terminal's width


@pytest.mark.parametrize("argv, words", [
    (["compare", "{fast}"], "compare needs at least two runs"),
    (["compare", "{fast}", "no-such-run"], "no run named 'no-such-run'"),
    (["compare", "{fast}", "{fast}"], "is given twice"),
    (["compare", "{fast}", "{empty}"], "has no events yet"),
])
def test_bad_inputs_give_one_line_with_what_to_do(two_runs, tmp_path, capsys, argv, words):
    empty = tmp_path / "runs" / "2026-12-03_09-00-00"
    empty.mkdir()
    write_status(empty, state="starting", pid=None)
    argv = [a.format(fast=two_runs[0], empty=empty) for a in argv]
    assert main([*argv, "--output-dir", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "->" in err


def test_the_engine_refuses_fewer_than_two_runs(two_runs):
    with pytest.raises(CockpitError, match="at least two"):
        compare_runs(two_runs[:1])
