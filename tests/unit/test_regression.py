"""eval --regression: the bundled lm-eval task, base vs tuned on tiny runs, and the one-line failures."""

from __future__ import annotations

import json
import sys

import pytest

from cockpit.run import events as ev
from cockpit.run.launch import prepare_run
from cockpit.training.trainer import TrainingRun

pytest.importorskip("lm_eval", reason="lm-eval is the `eval` extra (make test installs it)")

from cockpit.evaluation import regression  # noqa: E402
from cockpit.cli.main import main  # noqa: E402


def _stub_run(tmp_path):
    """A directory the CLI takes for a run (the checks below fail before anything is loaded)."""
    run = tmp_path / "stub-run"
    run.mkdir()
    (run / "config_used.yaml").write_text("model: none\n")
    return run


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_bundled_task_loads_through_lm_eval_offline_from_any_directory(tmp_path, monkeypatch):
    from lm_eval.tasks import TaskManager

    monkeypatch.chdir(tmp_path)  # the YAML's questions must not depend on the working directory
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    manager = TaskManager(include_path=str(regression.TASK_DIR), include_defaults=False, verbosity="ERROR")
    assert regression.DEFAULT_TASK in manager.all_tasks
    task = manager.load([regression.DEFAULT_TASK])["tasks"][regression.DEFAULT_TASK]
    assert task.OUTPUT_TYPE == "multiple_choice"
    docs = list(task.test_docs())
    assert 60 <= len(docs) <= 100
    assert len({d["id"] for d in docs}) == len(docs)
    assert {d["category"] for d in docs} == {"fact", "arithmetic", "everyday"}
    for doc in docs:
        choices = task.doc_to_choice(doc)
        assert 3 <= len(choices) == len(set(choices)), doc
        assert 0 <= task.doc_to_target(doc) < len(choices), doc
    first = docs[0]
    assert task.doc_to_text(first) == f"Question: {first['question']}\nAnswer:"
    # the right answer is not always in the same place
    assert len({task.doc_to_target(d) for d in docs}) >= 3


@pytest.fixture()
def lora_run(tiny_config):
    cfg = tiny_config(max_steps=4, batch_size=4, lr=5e-2)
    run_dir = prepare_run(cfg)
    assert TrainingRun(run_dir, sink=ev.ListSink()).execute() == "finished"
    return run_dir


def _fingerprint(model) -> float:
    import torch

    with torch.no_grad():
        return float(model(input_ids=torch.tensor([[5, 17, 42, 7, 99]])).logits.double().sum())


def test_regression_scores_base_and_tuned_and_merges_eval_json(lora_run, monkeypatch, capsys):
    from cockpit.evaluation.heldout import load_inference_model
    from cockpit.run_config import load_run_config

    (lora_run / "eval.json").write_text(json.dumps({"version": 1, "finetuned": {"metrics": {"bleu": 0.5}}}))
    seen: dict[str, float] = {}
    real_score = regression.score

    def spy(lm, names, manager, limit, chat_template):
        # what the harness's model computes while it scores this side
        seen["tuned" if "base" in seen else "base"] = _fingerprint(lm.model)
        return real_score(lm, names, manager, limit, chat_template)

    monkeypatch.setattr(regression, "score", spy)
    assert main(["eval", str(lora_run), "--regression", "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert "cockpit_general" in out and "acc_norm" in out and "fine-tuned" in out

    data = json.loads((lora_run / "eval.json").read_text())
    assert data["finetuned"] == {"metrics": {"bleu": 0.5}}  # what was there stays
    section = data["regression"]
    assert section["tasks"] == ["cockpit_general"] and section["items"] == {"cockpit_general": 3}
    for side in ("base", "tuned"):
        scores = section[side]["cockpit_general"]
        assert {"acc", "acc_norm", "acc_stderr", "acc_norm_stderr"} <= set(scores)
        assert all(0.0 <= scores[m] <= 1.0 for m in ("acc", "acc_norm"))
        assert section["seconds"][side] > 0
    for metric in ("acc", "acc_norm"):
        assert section["delta"]["cockpit_general"][metric] == pytest.approx(
            section["tuned"]["cockpit_general"][metric] - section["base"]["cockpit_general"][metric])
    assert "acc_stderr" not in section["delta"]["cockpit_general"]

    # the base side really was the base model (adapters off), the tuned side was not
    base_model, _ = load_inference_model(load_run_config(lora_run).model)
    assert seen["base"] == pytest.approx(_fingerprint(base_model), rel=1e-9)
    assert seen["tuned"] != pytest.approx(seen["base"], rel=1e-6)

    # a later plain eval rewrites its own part of eval.json and keeps the regression section
    from cockpit.evaluation.heldout import evaluate_run

    evaluate_run(lora_run, max_new_tokens=2, limit=1)
    again = json.loads((lora_run / "eval.json").read_text())
    assert again["regression"] == section and len(again["finetuned"]["examples"]) == 1


def test_regression_json_output_is_the_section(lora_run, capsys):
    assert main(["eval", str(lora_run), "--regression", "--limit", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads((lora_run / "eval.json").read_text())["regression"]
    assert doc["items"] == {"cockpit_general": 2}


def test_lm_eval_missing_is_one_line_with_the_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # `import lm_eval` now raises ImportError
    monkeypatch.setitem(sys.modules, "lm_eval.models.huggingface", None)
    assert main(["eval", str(_stub_run(tmp_path)), "--regression"]) == 1
    line = _one_line(capsys)
    assert "lm-evaluation-harness" in line and "not importable" in line
    assert line.endswith(f"install it with: {sys.executable} -m pip install 'lm-eval==0.4.13'")


def test_pin_matches_the_eval_extra():
    import tomllib

    from cockpit.paths import SOURCE_ROOT

    extras = tomllib.loads((SOURCE_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["eval"] == [regression.LM_EVAL_PIN]


def test_unknown_task_and_uncached_offline_task_are_one_line(tmp_path, monkeypatch, capsys):
    import datasets.config
    import huggingface_hub.constants

    run = _stub_run(tmp_path)
    assert main(["eval", str(run), "--regression", "--tasks", "cockpit_general,no_such_task_xyz"]) == 1
    line = _one_line(capsys)
    assert "unknown lm-eval task 'no_such_task_xyz'" in line and "--tasks" in line

    # offline, with an empty cache: arc_easy exists in lm-eval but its dataset cannot come
    for module, name in ((datasets.config, "HF_HUB_OFFLINE"), (huggingface_hub.constants, "HF_HUB_OFFLINE")):
        monkeypatch.setattr(module, name, True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert main(["eval", str(run), "--regression", "--tasks", "arc_easy"]) == 1
    line = _one_line(capsys)
    assert "lm-eval task 'arc_easy'" in line and "HF_DATASETS_OFFLINE=0" in line


def test_regression_refuses_a_model_and_plain_eval_options(tmp_path, tiny_model_dir, capsys):
    assert main(["eval", str(tiny_model_dir), "--regression"]) == 1
    assert "compares a run with its base model" in _one_line(capsys)
    assert main(["eval", str(_stub_run(tmp_path)), "--regression", "--data", "x.jsonl"]) == 1
    assert "--data" in _one_line(capsys)


def test_full_fine_tune_scores_the_base_after_the_tuned_model(tiny_config, monkeypatch):
    cfg = tiny_config(method="full", max_steps=3, batch_size=4, lr=5e-3)
    run_dir = prepare_run(cfg)
    assert TrainingRun(run_dir, sink=ev.ListSink()).execute() == "finished"
    order: list[float] = []
    real_score = regression.score
    monkeypatch.setattr(regression, "score", lambda lm, *a: (order.append(_fingerprint(lm.model)),
                                                             real_score(lm, *a))[1])
    section = regression.run_regression(run_dir, limit=2)
    from cockpit.evaluation.heldout import load_inference_model

    base_model, _ = load_inference_model(cfg.model)
    tuned_fp, base_fp = order  # the tuned weights are loaded first, then freed for the base
    assert base_fp == pytest.approx(_fingerprint(base_model), rel=1e-9)
    assert tuned_fp != pytest.approx(base_fp, rel=1e-6)
    assert set(section["base"]) == set(section["tuned"]) == {"cockpit_general"}
    assert section["items"] == {"cockpit_general": 2}


def test_at_a_terminal_the_install_is_offered(tmp_path, monkeypatch, capsys):
    from cockpit.cli import regression as cli_regression
    from cockpit.errors import CockpitError

    monkeypatch.setitem(sys.modules, "lm_eval", None)
    monkeypatch.setattr(cli_regression, "_interactive", lambda args: True)
    asked, installed = [], []
    monkeypatch.setattr(cli_regression, "_ask", lambda q: asked.append(q) or False)
    run = str(_stub_run(tmp_path))
    assert main(["eval", run, "--regression"]) == 1  # declined: the same one line
    assert "install it with:" in _one_line(capsys) and "lm-eval==0.4.13 now?" in asked[0]

    def fake_install(progress):
        installed.append(True)
        raise CockpitError("installing lm-eval==0.4.13 failed (no index)", "run it yourself: ...")

    monkeypatch.setattr(cli_regression, "_ask", lambda q: True)
    monkeypatch.setattr(regression, "install", fake_install)
    assert main(["eval", run, "--regression"]) == 1
    assert installed == [True] and "installing lm-eval==0.4.13 failed" in _one_line(capsys)
