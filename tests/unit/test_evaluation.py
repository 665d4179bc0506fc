"""eval on tiny models: the eval.json contract, --baseline side by side, perplexity."""

from __future__ import annotations

import json
import math

import pytest

from cockpit.run import events as ev
from cockpit.run.launch import prepare_run
from cockpit.training.trainer import TrainingRun

from tests.conftest import write_jsonl  # noqa: E402

EVAL_ROWS = [
    {"prompt": "What does glorp 1 do?", "completion": "glorp 1 turns the valve 1 times.",
     "must_include": ["glorp 1", "valve"], "task": "explain"},
    {"prompt": "What does glorp 2 do?", "completion": "glorp 2 turns the valve 2 times.",
     "must_include": ["glorp 2"], "task": "explain"},
]


@pytest.fixture()
def finished_run(tiny_config, tmp_path):
    eval_file = write_jsonl(tmp_path / "eval.jsonl", EVAL_ROWS)
    cfg = tiny_config(max_steps=4, eval_data=str(eval_file), batch_size=4)
    run_dir = prepare_run(cfg)
    sink = ev.ListSink()
    assert TrainingRun(run_dir, sink=sink).execute() == "finished"
    return run_dir, sink, eval_file


def test_eval_json_with_baseline_side_by_side(finished_run):
    from cockpit.evaluation.heldout import evaluate_run

    run_dir, sink, _ = finished_run
    result = evaluate_run(run_dir, baseline=True, max_new_tokens=4)
    on_disk = json.loads((run_dir / "eval.json").read_text())
    assert on_disk["finetuned"]["metrics"] == pytest.approx(result["finetuned"]["metrics"], nan_ok=True)
    for side in ("finetuned", "baseline"):
        report = on_disk[side]
        assert {"model", "metrics", "examples"} <= set(report)
        assert len(report["examples"]) == 2
        for ex in report["examples"]:
            assert {"prompt", "reference", "answer", "task", "must_include", "scores"} <= set(ex)
            assert set(ex["scores"]) >= {"exact_match", "token_jaccard", "rouge1_f1", "rougeL_f1", "bleu",
                                         "fact_recall"}
        assert {"exact_match", "token_jaccard", "rouge1_f1", "rougeL_f1", "bleu", "fact_recall",
                "perplexity"} <= set(report["metrics"])
    assert on_disk["baseline"]["model"].endswith("(base)")
    # One eval batch: the trainer's eval loss and our perplexity measure the same tokens.
    eval_loss = sink.of_type(ev.Eval)[-1].eval_loss
    assert on_disk["finetuned"]["metrics"]["perplexity"] == pytest.approx(math.exp(eval_loss), rel=1e-3)
    # the adapter changed the model: the base's perplexity differs
    assert on_disk["baseline"]["metrics"]["perplexity"] != pytest.approx(
        on_disk["finetuned"]["metrics"]["perplexity"], rel=1e-4)


def test_eval_cli_json_and_model_target(finished_run, tiny_model_dir):
    import subprocess
    import sys

    run_dir, _, eval_file = finished_run
    out = subprocess.run([sys.executable, "-m", "cockpit.cli.main", "eval", str(run_dir), "--json", "--max-new-tokens",
                          "2", "--limit", "1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["baseline"] is None and len(doc["finetuned"]["examples"]) == 1
    out = subprocess.run([sys.executable, "-m", "cockpit.cli.main", "eval", str(tiny_model_dir), "--baseline"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "compares a run with its base model" in out.stderr
    out = subprocess.run([sys.executable, "-m", "cockpit.cli.main", "eval", str(tiny_model_dir), "--data",
                          str(eval_file), "--max-new-tokens", "2"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "fact recall" in out.stdout
