"""Preference stages (DPO, KTO) through TRL on the tiny model: every method trains, the
reference stays frozen, a chained run starts from its parent's weights, a stopped run
resumes loss for loss, and bad starts are refused before a run directory exists."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cockpit.run import events as ev
from cockpit.errors import CockpitError
from cockpit.run.launch import prepare_run
from cockpit.run.status import read_status
from cockpit.training.trainer import TrainingRun
from tests.conftest import TINY_ROWS, write_jsonl

PROMPT_IDS = [[1, 17, 230, 45, 99, 3, 12, 40]]


@pytest.fixture()
def pairs_file(tmp_path):
    rows = [{"prompt": r["prompt"], "chosen": r["completion"],
             "rejected": r["completion"].replace(f"valve {i % 3}", f"valve {(i + 1) % 3}")}
            for i, r in enumerate(TINY_ROWS)]
    return write_jsonl(tmp_path / "pairs.jsonl", rows)


@pytest.fixture()
def pref_config(tiny_config, pairs_file):
    def make(**overrides):
        values = {"stage": "dpo", "data": str(pairs_file), "max_steps": 3, "batch_size": 2, "lr": 5e-3,
                  "save_steps": 100}
        return tiny_config(**(values | overrides))

    return make


def train(cfg, sink=None, run_dir=None, resume=False, stop=None):
    run_dir = run_dir or prepare_run(cfg)
    sink = sink or ev.ListSink()
    job = TrainingRun(run_dir, resume=resume, sink=sink, stop=stop)
    state = job.execute()
    return run_dir, sink, state, job


def logits(model):
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor(PROMPT_IDS)).logits


def load(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path)).eval()


@pytest.mark.parametrize("stage", ["dpo", "kto"])
@pytest.mark.parametrize("method", ["lora", "full", "int8", "qlora"])
def test_each_stage_trains_real_steps_with_each_method(pref_config, stage, method):
    run_dir, sink, state, _ = train(pref_config(stage=stage, method=method))
    assert state == "finished", read_status(run_dir)
    steps = sink.of_type(ev.Step)
    assert [e.step for e in steps] == [1, 2, 3]
    assert all(math.isfinite(e.loss) for e in steps)
    # the stage's own numbers ride on every step event
    assert all("rewards/margins" in e.metrics and "rewards/chosen" in e.metrics for e in steps)
    if stage == "dpo":
        assert all(0.0 <= e.metrics["rewards/accuracies"] <= 1.0 for e in steps)
    info = " ".join(e.message for e in sink.of_type(ev.Warning) if e.kind == "info")
    assert stage.upper() in info and "reference" in info, info
    saved = run_dir / "model"
    assert (saved / ("model.safetensors" if method == "full" else "adapter_config.json")).exists()
    assert not (saved / "ref").exists()
    used = (run_dir / "config_used.yaml").read_text()
    assert f"stage: {stage}" in used


def test_lora_reference_is_the_base_with_adapters_off_and_stays_frozen(pref_config, tiny_model_dir):
    from peft import PeftModel

    run_dir, _, state, job = train(pref_config(max_steps=4))
    assert state == "finished"
    assert job.trainer.ref_model is None  # no second copy: the reference is the adapters switched off
    base = logits(load(tiny_model_dir))
    tuned = PeftModel.from_pretrained(load(tiny_model_dir), str(run_dir / "model")).eval()
    assert not logits(tuned).allclose(base, atol=1e-4), "the adapter did not train"
    with tuned.disable_adapter():
        assert logits(tuned).allclose(base, atol=1e-6)


def test_full_reference_is_a_frozen_copy_of_the_starting_weights(pref_config, tiny_model_dir):
    run_dir, _, state, job = train(pref_config(method="full", max_steps=3))
    assert state == "finished"
    ref = job.trainer.ref_model
    assert ref is not None and ref is not job.trainer.model
    trained = {id(p) for group in job.trainer.optimizer.param_groups for p in group["params"]}
    assert trained and not any(id(p) in trained for p in ref.parameters())  # the optimizer never sees it
    base = logits(load(tiny_model_dir))
    assert logits(ref.float().cpu()).allclose(base, atol=1e-5)
    assert not logits(load(run_dir / "model")).allclose(base, atol=1e-4), "the policy did not train"


@pytest.fixture()
def sft_run(tiny_config):
    run_dir, _, state, _ = train(tiny_config(max_steps=4, save_steps=100))
    assert state == "finished"
    return run_dir


def test_a_merged_chain_starts_from_the_sft_weights(pref_config, sft_run, tiny_model_dir):
    import yaml
    from peft import PeftModel

    run_dir, sink, state, _ = train(pref_config(model=str(sft_run), max_steps=2))
    assert state == "finished", read_status(run_dir)
    used = yaml.safe_load((run_dir / "config_used.yaml").read_text())
    assert used["parent_run"] == str(sft_run) and used["model"] == str(sft_run) and used["from_run"] == "merge"
    merged = sft_run / "export" / "merged"
    assert (merged / "config.json").exists()
    sft = PeftModel.from_pretrained(load(tiny_model_dir), str(sft_run / "model")).merge_and_unload()
    assert logits(load(merged)).allclose(logits(sft), atol=1e-5)
    assert not logits(load(merged)).allclose(logits(load(tiny_model_dir)), atol=1e-4)
    # the DPO adapter sits on the merged SFT model: switched off, it is the SFT model
    dpo = PeftModel.from_pretrained(load(merged), str(run_dir / "model")).eval()
    with dpo.disable_adapter():
        assert logits(dpo).allclose(logits(sft), atol=1e-5)


def test_a_continued_chain_keeps_training_the_sft_adapter(pref_config, sft_run, tiny_model_dir):
    import yaml
    from safetensors.torch import load_file

    run_dir, _, state, job = train(pref_config(model=str(sft_run), from_run="continue", max_steps=1, lr=1e-9,
                                               warmup_ratio=0.0))
    assert state == "finished", read_status(run_dir)
    used = yaml.safe_load((run_dir / "config_used.yaml").read_text())
    assert used["model"] == str(tiny_model_dir) and used["parent_run"] == str(sft_run)
    parent = load_file(str(sft_run / "model" / "adapter_model.safetensors"))
    child = load_file(str(run_dir / "model" / "adapter_model.safetensors"))
    assert set(parent) == set(child)
    lora_b = [k for k in parent if "lora_B" in k]
    assert lora_b and any(float(parent[k].abs().max()) > 0 for k in lora_b)  # a trained (nonzero) B
    for key in parent:  # an lr of 1e-9 leaves the adapter where the parent left it
        assert child[key].float().allclose(parent[key].float(), atol=1e-5), key


def test_a_stopped_dpo_run_resumes_loss_for_loss(pref_config):
    from cockpit.training.callbacks import StopFlag

    cfg = pref_config(max_steps=6, save_steps=100, lr_scheduler="cosine", warmup_ratio=0.2)
    _, straight, _, _ = train(cfg)
    stop = StopFlag()

    class StopAtThree(ev.ListSink):
        def emit(self, event):
            super().emit(event)
            if isinstance(event, ev.Step) and event.step == 3:
                stop.requested = True

    run_dir = prepare_run(cfg)
    first = StopAtThree()
    _, _, state, _ = train(cfg, sink=first, run_dir=run_dir, stop=stop)
    assert state == "stopped"
    stopped_at = first.of_type(ev.RunFinished)[-1].step
    _, second, state, _ = train(cfg, run_dir=run_dir, resume=True)
    assert state == "finished"
    expected = {e.step: (e.loss, e.metrics["rewards/margins"]) for e in straight.of_type(ev.Step)}
    resumed = {e.step: (e.loss, e.metrics["rewards/margins"]) for e in second.of_type(ev.Step)}
    assert list(resumed) == list(range(stopped_at + 1, 7))
    for step, (loss, margin) in resumed.items():
        assert loss == pytest.approx(expected[step][0], rel=1e-4), (step, resumed, expected)
        assert margin == pytest.approx(expected[step][1], rel=1e-3, abs=1e-6)


@pytest.mark.parametrize("overrides, fragment", [
    ({"stage": "orpo"}, "experimental"),
    ({"stage": "kto", "batch_size": 1}, "batch_size of at least 2"),
    ({"data": "SFT"}, "has no preference pairs"),
    ({"from_run": "continue", "model": "SFT_RUN", "method": "full"}, "has none of"),
])
def test_bad_preference_starts_are_refused_before_a_run_exists(pref_config, tiny_data, tiny_config, overrides,
                                                               fragment):
    if overrides.get("data") == "SFT":
        overrides["data"] = str(tiny_data)
    if overrides.get("model") == "SFT_RUN":
        overrides["model"] = str(train(tiny_config(max_steps=1, save_steps=100))[0])
    cfg = pref_config(**overrides)
    runs = Path(cfg.output_dir)
    before = set(runs.glob("*")) if runs.exists() else set()
    with pytest.raises(CockpitError) as err:
        prepare_run(cfg)
    assert fragment in str(err.value) and "\n" not in err.value.message
    after = set(runs.glob("*")) if runs.exists() else set()
    assert after == before, "a refused start left a run directory"


def test_preference_eval_scores_the_run_against_the_model_it_started_from(pref_config, tmp_path):
    from cockpit.evaluation.preference import evaluate_preference_run

    run_dir, _, state, _ = train(pref_config(max_steps=6, lr=1e-2, eval_split=0.25))
    assert state == "finished"
    result = evaluate_preference_run(run_dir, baseline=True)
    on_disk = json.loads((run_dir / "eval.json").read_text())["preference"]
    assert on_disk["metrics"] == pytest.approx(result["metrics"])
    tuned, base = result["metrics"], result["baseline"]["metrics"]
    assert tuned["pairs"] == base["pairs"] == 3  # 12 pairs, a quarter held out by prompt
    assert 0.0 <= tuned["pref_accuracy"] <= 1.0
    assert result["baseline"]["model"].endswith("(base)")
    for ex in on_disk["examples"]:
        assert ex["preferred"] == (ex["chosen_logp"] > ex["rejected_logp"])
    # DPO moved the held-out margin; the base model's own numbers are not the run's
    assert tuned["pref_margin"] != pytest.approx(base["pref_margin"], abs=1e-3)
