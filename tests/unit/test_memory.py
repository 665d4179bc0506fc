"""The memory estimator: its arithmetic, the issue's Llama-3.1-8B figures, and its activation
count checked against what autograd really saves."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cockpit.models.catalog import ModelSpec, load_catalog, lookup
from cockpit.errors import CockpitError
from cockpit.run.words import fmt_bytes
from cockpit.planning.memory import (
    ALL_LINEAR,
    BREAKDOWN_KEYS,
    NF4_BYTES_PER_PARAM,
    estimate_for_config,
    estimate_memory,
    layer_activation_bytes,
    lora_params,
    weight_bytes,
)

GB = 10**9
GIB = 2**30
LLAMA8 = lookup("meta-llama/Llama-3.1-8B")
SMOL = lookup("HuggingFaceTB/SmolLM2-135M")


def test_weights_per_method_and_device():
    p, lin = LLAMA8.params, LLAMA8.linear_params
    assert weight_bytes(LLAMA8, "full", "cuda") == 4 * p  # fp32 master weights
    assert weight_bytes(LLAMA8, "lora", "cuda") == 2 * p
    assert weight_bytes(LLAMA8, "lora", "cpu") == 4 * p  # the CPU trains in fp32
    assert weight_bytes(LLAMA8, "qlora", "cuda") == int(NF4_BYTES_PER_PARAM * lin) + 2 * (p - lin)
    rows = LLAMA8.layers * (4096 + 1024 + 1024 + 4096 + 14336 + 14336 + 4096)
    assert weight_bytes(LLAMA8, "int8", "cuda") == lin + 4 * rows + 2 * (p - lin)
    assert NF4_BYTES_PER_PARAM == pytest.approx(0.5159, abs=1e-4)  # 4 bits + 8-bit absmax/64 + fp32/16384


def test_lora_parameter_count():
    # r x (d_in + d_out) per target: Llama-3.1-8B, r=16, all seven projections
    per_layer = 16 * ((4096 + 4096) + 2 * (4096 + 1024) + (4096 + 4096) + 2 * (4096 + 14336) + (14336 + 4096))
    assert lora_params(LLAMA8, 16) == 32 * per_layer == 41_943_040
    assert lora_params(LLAMA8, 16, ["q_proj", "v_proj"]) == 32 * 16 * ((4096 + 4096) + (4096 + 1024))


def test_llama_3_1_8b_figures_of_the_issue():
    """Batch 1, seq 512 on a GPU. QLoRA single-digit GB and LoRA in the high teens hold with
    gradient checkpointing (as the QLoRA recipe trains); without it, 512 tokens of LoRA
    activations (dropout copies of every projection input) add ~3.5 GiB to both."""
    qlora = estimate_memory(LLAMA8, "qlora", 1, 512, grad_ckpt=True, device="cuda")
    lora = estimate_memory(LLAMA8, "lora", 1, 512, grad_ckpt=True, device="cuda")
    full = estimate_memory(LLAMA8, "full", 1, 512, device="cuda")
    assert 5 * GB < qlora.total_bytes < 10 * GB
    assert 16 * GIB <= lora.total_bytes < 20 * GIB
    assert full.total_bytes > 100 * GB
    assert full.peak_phase == "optimizer step"  # 16 B/param of states outweigh the activations
    for method, with_ckpt in (("qlora", qlora), ("lora", lora)):
        without = estimate_memory(LLAMA8, method, 1, 512, device="cuda")
        assert 3 * GIB < without.total_bytes - with_ckpt.total_bytes < 4.5 * GIB


def test_breakdown_sums_to_the_total_and_names_the_issue_keys():
    for method in ("full", "lora", "int8", "qlora"):
        for device in ("cpu", "cuda"):
            for ckpt in (False, True):
                est = estimate_memory(SMOL, method, 4, 512, 8, grad_ckpt=ckpt, device=device)
                assert tuple(est.breakdown) == BREAKDOWN_KEYS
                assert sum(est.breakdown.values()) == est.total_bytes
                assert all(v >= 0 for v in est.breakdown.values())
                assert est.to_dict()["total_bytes"] == est.total_bytes


def test_transformers_loss_logits_are_twelve_bytes_per_vocabulary_entry_per_token():
    est = estimate_memory(SMOL, "lora", 2, 256, device="cpu", learned_loss=False)
    assert est.breakdown["logits"] == 12 * 2 * 256 * SMOL.vocab
    gemma = lookup("google/gemma-2-2b")
    soft = estimate_memory(gemma, "lora", 1, 256, device="cuda")
    assert soft.breakdown["logits"] == (12 + 2) * 256 * gemma.vocab  # + the soft-capping tanh output
    # soft-capped logits never take the learned-position loss, whatever is asked
    assert estimate_memory(gemma, "lora", 1, 256, device="cuda", learned_loss=True).breakdown == soft.breakdown


def test_learned_loss_logits_are_one_chunk_whatever_the_batch():
    from cockpit.training.learned_loss import chunk_rows

    rows = chunk_rows(SMOL.vocab, "cpu")
    for batch, seq in ((4, 512), (16, 2048)):
        est = estimate_memory(SMOL, "lora", batch, seq, device="cpu")
        tokens = batch * seq
        assert est.breakdown["logits"] == rows * SMOL.vocab * 4 + 8 * tokens * SMOL.hidden
        assert est.breakdown["logits"] < estimate_memory(SMOL, "lora", batch, seq, device="cpu",
                                                         learned_loss=False).breakdown["logits"] / 15
    # fewer tokens than one chunk: only those rows
    small = estimate_memory(SMOL, "lora", 1, 64, device="cuda")
    assert small.breakdown["logits"] == 64 * SMOL.vocab * (4 + 2) + 8 * 64 * SMOL.hidden


def test_adapters_cost_sixteen_bytes_per_trainable_parameter():
    est = estimate_memory(SMOL, "lora", 1, 128, 8, device="cpu")
    assert est.trainable_params == lora_params(SMOL, 8)
    # at the start of the backward pass (the peak) the gradients do not exist yet
    assert est.peak_phase == "backward start"
    assert est.breakdown["trainable_states"] == 12 * est.trainable_params
    assert est.details["gradients"] == 4 * est.trainable_params


def test_full_fine_tuning_on_cpu_is_sixteen_bytes_per_parameter_at_the_optimizer_step():
    est = estimate_memory(LLAMA8, "full", 1, 128, device="cpu")
    assert est.peak_phase == "optimizer step"
    # weights 4 + gradients 4 + AdamW m, v 8; Llama-3.1-8B's output layer is not tied, so no
    # second embedding gradient is summed in
    assert est.breakdown["weights"] + est.breakdown["trainable_states"] == 16 * LLAMA8.params
    tied = estimate_memory(SMOL, "full", 1, 128, device="cpu")
    assert tied.breakdown["trainable_states"] == 12 * SMOL.params + 8 * SMOL.vocab * SMOL.hidden


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from(sorted(load_catalog())),
    method=st.sampled_from(["full", "lora", "int8", "qlora"]),
    device=st.sampled_from(["cpu", "cuda"]),
    batch=st.integers(1, 8),
    seq=st.integers(16, 4096),
    ckpt=st.booleans(),
)
def test_more_tokens_never_need_less_memory(model, method, device, batch, seq, ckpt):
    spec = load_catalog()[model]
    base = estimate_memory(spec, method, batch, seq, grad_ckpt=ckpt, device=device).total_bytes
    assert estimate_memory(spec, method, batch + 1, seq, grad_ckpt=ckpt, device=device).total_bytes >= base
    assert estimate_memory(spec, method, batch, seq + 64, grad_ckpt=ckpt, device=device).total_bytes >= base
    if seq >= 256 and method != "full":
        assert estimate_memory(spec, method, batch, seq, grad_ckpt=True, device=device).total_bytes <= base
    if device == "cuda":
        totals = [estimate_memory(spec, m, batch, seq, grad_ckpt=ckpt, device=device).total_bytes
                  for m in ("lora", "int8", "qlora")]
        assert totals[0] > totals[2]


@pytest.mark.parametrize("kwargs, match", [
    ({"batch": -1}, "batch size must be a positive integer"),
    ({"seq": 0}, "sequence length"),
    ({"lora_r": 0}, "LoRA rank"),
    ({"method": "dora"}, "unknown method"),
    ({"device": "tpu"}, "unknown device"),
    ({"optimizer": "lion"}, "unknown optimizer"),
    ({"targets": ["qkv_proj"]}, "not projections"),
    ({"lora_dropout": 1.5}, "dropout"),
])
def test_bad_arguments_are_one_clear_error(kwargs, match):
    with pytest.raises(CockpitError, match=match):
        estimate_memory(SMOL, **kwargs)


def test_optimizer_choice_changes_the_states():
    adamw = estimate_memory(SMOL, "full", 1, 128, device="cpu", optimizer="adamw").details["optimizer_states"]
    eight = estimate_memory(SMOL, "full", 1, 128, device="cpu", optimizer="adamw_8bit").details["optimizer_states"]
    assert adamw == 8 * SMOL.params and eight == 2 * SMOL.params


def test_estimate_for_a_training_config():
    from cockpit.config import build_config

    cfg = build_config(overrides={"method": "lora", "batch_size": 2, "max_length": 256, "lora_r": 8})
    data = estimate_for_config(cfg, device="cpu")
    direct = estimate_memory(lookup(cfg.model), "lora", 2, 256, 8, device="cpu", lora_dropout=cfg.lora_dropout)
    assert data["total_bytes"] == direct.total_bytes and data["method"] == "lora"


def test_fmt_bytes():
    assert fmt_bytes(1536 * 2**20) == "1.5 GiB" and fmt_bytes(512) == "512 B" and fmt_bytes(3 * 2**20) == "3.0 MiB"


# --- the activation count against autograd -------------------------------------------------


def _saved_bytes(model, batch: int, seq: int) -> int:
    """Bytes of the distinct non-parameter tensors autograd saves in one forward pass."""
    import torch
    from torch.autograd.graph import saved_tensors_hooks

    ids = torch.randint(0, 1000, (batch, seq), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(batch, seq, dtype=torch.long)
    if batch > 1:
        mask[-1, seq // 2:] = 0
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    with saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, attention_mask=mask, labels=ids)
    return sum(seen.values())


def _tiny(arch: str, layers: int, method: str, dropout: float, targets):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    kw = {"hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": layers, "num_attention_heads": 4,
          "num_key_value_heads": 2, "vocab_size": 1024, "tie_word_embeddings": True}
    if arch == "gemma2":
        kw.update(head_dim=24, attn_implementation="eager")
    else:
        kw.update(attn_implementation="sdpa")
    cfg = AutoConfig.for_model(arch, **kw)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    if method != "full":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout,
                                                 target_modules=list(targets), task_type="CAUSAL_LM"))
    model.train()
    return model, cfg


@pytest.mark.parametrize("arch, method, batch, seq, dropout, targets", [
    ("llama", "full", 3, 48, 0.0, ALL_LINEAR),  # padded batch: repeat_kv copies and a mask per layer
    ("llama", "lora", 1, 64, 0.05, ALL_LINEAR),  # a dropout copy (and mask) per adapter
    ("qwen2", "lora", 2, 32, 0.0, ("q_proj", "v_proj")),  # shared inputs without dropout
    ("gemma2", "lora", 2, 32, 0.05, ALL_LINEAR),  # eager attention keeps s x s matrices
])
def test_layer_activations_match_what_autograd_saves(arch, method, batch, seq, dropout, targets):
    from cockpit.models.catalog import spec_from_config

    totals = []
    for layers in (2, 3):  # the difference is exactly one decoder layer
        model, cfg = _tiny(arch, layers, method, dropout, targets)
        totals.append(_saved_bytes(model, batch, seq))
    spec: ModelSpec = spec_from_config(cfg.to_dict(), arch)
    expected = layer_activation_bytes(spec, method, batch * seq, seq, a=4, padded=batch > 1, targets=targets,
                                      lora_r=4, dropout=dropout, device="cpu")
    assert totals[1] - totals[0] == pytest.approx(expected, rel=0.01)
