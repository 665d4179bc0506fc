"""The advisor's branches: method by memory (with the OOM ladder) and base vs specialized."""

from __future__ import annotations

import pytest

from cockpit.planning.advisor import TASKS, model_kind_advice, recommend, specialization_flags
from cockpit.models.catalog import lookup
from cockpit.planning.memory import estimate_memory

GIB = 2**30
LLAMA8 = lookup("meta-llama/Llama-3.1-8B")
QWEN05 = lookup("Qwen/Qwen2.5-0.5B")


def _check_consistent(rec):
    """What the advisor recommends is exactly what the estimator says about those settings."""
    s = rec.settings
    est = estimate_memory(lookup(s.model), s.method, s.batch, s.seq, 16, grad_ckpt=s.grad_ckpt, device=rec.device)
    assert est.total_bytes == rec.estimate.total_bytes
    assert rec.fits == (est.total_bytes <= rec.usable_bytes)
    assert rec.usable_bytes == int(rec.budget_bytes * 0.9)


def test_24_gib_gpu_gets_a_method_that_fits_for_llama_8b():
    rec = recommend(LLAMA8, 24 * GIB, "cuda", batch=1, seq=512)
    assert rec.fits and rec.method in ("lora", "int8", "qlora")
    assert rec.estimate.total_bytes <= 0.9 * 24 * GIB
    _check_consistent(rec)
    assert any("Rule of thumb" in r and "INT8" in r for r in rec.reasons)  # 24 GiB is 1.6x the 16-bit size
    assert any("Full fine-tuning with AdamW would need" in r for r in rec.reasons)


def test_8_gib_gpu_gets_qlora_or_the_ladder_for_llama_8b():
    rec = recommend(LLAMA8, 8 * GIB, "cuda", batch=1, seq=512)
    assert rec.method == "qlora" or rec.ladder
    assert rec.ladder[0].action == "as asked" and not rec.ladder[0].fits
    # every rung is cumulative and carries its number; the last one is the recommendation
    assert all(step.total_bytes > 0 for step in rec.ladder)
    assert rec.ladder[-1].fits and rec.ladder[-1].settings == rec.settings
    assert [s.fits for s in rec.ladder[:-1]] == [False] * (len(rec.ladder) - 1)
    assert any("QLoRA" in r for r in rec.reasons)
    _check_consistent(rec)


def test_plenty_of_memory_keeps_lora_as_asked_and_mentions_full():
    rec = recommend(QWEN05, 80 * GIB, "cuda", batch=4, seq=512)
    assert rec.method == "lora" and rec.fits and not rec.ladder
    assert (rec.settings.batch, rec.settings.seq, rec.settings.grad_ckpt) == (4, 512, False)
    assert any("Full fine-tuning would fit too" in r for r in rec.reasons)
    assert any(">= 2x" in r and "here: a 16-bit base" in r for r in rec.reasons)


def test_the_ladder_tries_batch_then_checkpointing_before_lighter_methods():
    rec = recommend(QWEN05, int(3.5 * GIB), "cuda", method="lora", batch=8, seq=1024)
    actions = [s.action.split(":")[0].split(" (")[0] for s in rec.ladder]
    assert actions[0] == "as asked"
    assert actions[1].startswith("batch 1 with 8x gradient accumulation")
    assert rec.ladder[1].settings.grad_accum == 8
    assert actions[2].startswith("gradient checkpointing")
    assert rec.fits


def test_an_explicit_method_that_does_not_fit_walks_down_from_it():
    rec = recommend(LLAMA8, 24 * GIB, "cuda", method="full", batch=1, seq=512)
    assert not rec.ladder[0].fits and rec.ladder[0].settings.method == "full"
    assert rec.method in ("lora", "int8", "qlora") and rec.fits


def test_nothing_fits_ends_with_smaller_models_and_says_so():
    rec = recommend(LLAMA8, 1 * GIB, "cuda", batch=1, seq=512)
    assert rec.method is None and not rec.fits
    assert any("smaller model: meta-llama/Llama-3.2-1B" in s.action for s in rec.ladder)
    assert rec.ladder[-1].settings.seq == 128
    assert any("Nothing fits" in r for r in rec.reasons)


def test_cpu_recommendations_say_it_is_the_cpu():
    rec = recommend(lookup("smollm2-135m"), 16 * GIB, "cpu", batch=4, seq=512)
    assert rec.fits and rec.method == "lora" and rec.device == "cpu"
    assert any("No GPU" in r for r in rec.reasons)


def test_several_gpus_mention_sharding_when_the_ladder_is_needed():
    rec = recommend(LLAMA8, 16 * GIB, "cuda", batch=1, seq=512, gpus=4)
    assert any("FSDP" in r for r in rec.reasons)


def test_to_dict_is_plain_data():
    import json

    data = recommend(LLAMA8, 8 * GIB, "cuda", batch=1, seq=512).to_dict()
    assert json.loads(json.dumps(data))["recommended_method"] == data["recommended_method"]


# --- base vs specialized -------------------------------------------------------------------


@pytest.mark.parametrize("name, flags", [
    ("Qwen/Qwen2.5-0.5B", []),
    ("meta-llama/Llama-3.1-8B-Instruct", ["instruction-tuned"]),
    ("google/gemma-2-2b-it", ["instruction-tuned"]),
    ("Qwen/Qwen2.5-Coder-1.5B", ["code"]),
    ("defog/sqlcoder-7b", ["code", "SQL"]),
    ("acme/mistral-7b-medium", []),
    ("acme/llama-sql-7b", ["SQL"]),
    ("acme/Med-Llama-8B-Chat", ["medical", "chat-tuned"]),
    ("acme/fin-mistral-7b-dpo", ["finance", "preference-aligned (DPO)"]),
    ("acme/llama-3-8b-rlhf", ["preference-aligned (RLHF)"]),
])
def test_red_flags_by_name(name, flags):
    spec = lookup(name)
    assert specialization_flags(name, spec.kind if spec else None) == flags


def test_a_base_model_is_kept():
    advice = model_kind_advice("Qwen/Qwen2.5-0.5B", "new")
    assert advice.verdict == "keep" and not advice.specialized


def test_a_specialized_model_without_a_task_asks_the_question():
    advice = model_kind_advice("meta-llama/Llama-3.2-1B-Instruct")
    assert advice.verdict == "ask" and advice.question and set(advice.options) == set(TASKS)
    assert advice.suggested_model == "meta-llama/Llama-3.2-1B"


def test_new_patterns_on_an_instruct_model_point_to_its_base():
    advice = model_kind_advice("Qwen/Qwen2.5-1.5B-Instruct", "new")
    assert advice.verdict == "base" and advice.suggested_model == "Qwen/Qwen2.5-1.5B"
    assert any("base model learns best" in r for r in advice.reasons)


def test_changing_behaviour_also_points_to_the_base():
    advice = model_kind_advice("Qwen/Qwen2.5-Coder-7B-Instruct", "behaviour")
    assert advice.verdict == "base" and advice.suggested_model == "Qwen/Qwen2.5-7B"
    assert advice.flags == ["code", "instruction-tuned"]


def test_extending_its_own_domain_keeps_the_specialist():
    advice = model_kind_advice("Qwen/Qwen2.5-Coder-7B", "extend")
    assert advice.verdict == "keep" and advice.suggested_model is None
    assert any("head start" in r for r in advice.reasons)


def test_a_tiny_chat_dataset_can_start_from_the_instruct_model():
    advice = model_kind_advice("meta-llama/Llama-3.2-1B-Instruct", "behaviour", examples=40, chat_data=True)
    assert advice.verdict == "keep"
    assert any("only 40 chat examples" in r for r in advice.reasons)
    big = model_kind_advice("meta-llama/Llama-3.2-1B-Instruct", "behaviour", examples=5000, chat_data=True)
    assert big.verdict == "base"


def test_the_bundled_instruct_model_notes_the_base_needs_a_download():
    advice = model_kind_advice("smollm2-135m", "new")
    assert advice.verdict == "base" and advice.suggested_model == "HuggingFaceTB/SmolLM2-135M"
    assert any("bundled" in r for r in advice.reasons)


def test_an_unknown_specialized_name_gets_generic_advice():
    advice = model_kind_advice("acme/med-llama-7b", "new")
    assert advice.verdict == "base" and advice.suggested_model is None
    assert any("without the instruct/chat/domain suffix" in r for r in advice.reasons)


def test_an_unknown_task_is_refused():
    with pytest.raises(ValueError):
        model_kind_advice("Qwen/Qwen2.5-0.5B", "pretrain")
