"""cockpit.training.speedups decides what a run gets: exact speed-ups on by default, impossible
explicit requests refused with one line before a run directory exists."""

from __future__ import annotations

import types

import pytest

from cockpit.config import build_config, config_from_dict
from cockpit.errors import CockpitError
from cockpit.training.packed_attention import NAME as PACKED_SDPA
from cockpit.training.speedups import check_speedups, plain_head, resolve_speedups


def _cfg(**overrides):
    return build_config("cpu-demo", None, overrides)


def test_defaults_on_a_cpu_llama_are_every_exact_speedup():
    s = resolve_speedups(_cfg(), "llama", "cpu", "float32")
    assert (s.learned_loss, s.packing, s.liger, s.attn) == (True, True, False, PACKED_SDPA)
    assert s.notes == []
    assert "loss on learned positions only" in s.summary() and "packing" in s.summary()


def test_explicit_off_switches_are_obeyed():
    s = resolve_speedups(_cfg(learned_loss=False, packing="false", attn="eager"), "llama", "cpu", "float32")
    assert (s.learned_loss, s.packing, s.attn) == (False, False, "eager")
    assert resolve_speedups(_cfg(packing="false"), "llama", "cpu", "float32").attn == "sdpa"


def test_soft_capped_logits_keep_transformers_loss_and_say_why():
    capped = types.SimpleNamespace(final_logit_softcapping=30.0)
    s = resolve_speedups(_cfg(), "gemma2", "cpu", "float32", capped)
    assert not s.learned_loss and s.packing
    assert any("gemma2" in n and "soft-capping" in n for n in s.notes)
    assert plain_head("gemma3_text", types.SimpleNamespace(final_logit_softcapping=None))
    assert not plain_head("cohere")


def test_unknown_family_is_padded_unless_forced():
    s = resolve_speedups(_cfg(), "bloom", "cpu", "float32")
    assert not s.packing and not s.learned_loss and len(s.notes) == 2
    assert resolve_speedups(_cfg(packing="true"), "bloom", "cpu", "float32").packing


def test_sharded_training_keeps_transformers_loss():
    s = resolve_speedups(_cfg(), "llama", "cuda", "bfloat16", distributed="fsdp")
    assert not s.learned_loss and any("fsdp" in n for n in s.notes)


@pytest.mark.parametrize("overrides, device, dtype, match", [
    ({"kernels": "liger"}, "cpu", "float32", "kernels=liger needs a CUDA GPU"),
    ({"attn": "flash_attention_2"}, "cpu", "float32", "needs a CUDA GPU"),
    ({"attn": "flash_attention_2"}, "cuda", "float32", "needs fp16 or bf16"),
])
def test_impossible_requests_are_refused_with_one_line(overrides, device, dtype, match):
    with pytest.raises(CockpitError, match=match) as info:
        resolve_speedups(_cfg(**overrides), "llama", device, dtype)
    assert "\n" not in info.value.message and info.value.advice


def test_preflight_refuses_liger_on_this_cpu_machine(tiny_config):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine can run Liger")
    with pytest.raises(CockpitError, match="liger"):
        check_speedups(tiny_config(kernels="liger"))
    check_speedups(tiny_config())  # auto never refuses


@pytest.mark.parametrize("given, stored", [(True, "true"), (False, "false"), ("auto", "auto"), ("yes", "true"),
                                           ("off", "false")])
def test_packing_reads_old_booleans_and_new_words(given, stored):
    assert config_from_dict({"packing": given}).packing == stored


@pytest.mark.parametrize("key, value", [("packing", "sometimes"), ("kernels", "triton"), ("attn", "flash")])
def test_bad_values_name_the_key_and_the_choices(key, value):
    with pytest.raises(CockpitError, match=key) as info:
        config_from_dict({key: value})
    assert "|" in info.value.advice


def test_kernels_none_is_a_choice_not_an_empty_value():
    assert config_from_dict({"kernels": "none"}).kernels == "none"
    assert config_from_dict({"kernels": "None"}).kernels == "none"
