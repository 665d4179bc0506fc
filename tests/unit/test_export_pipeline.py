"""Export of a tiny LoRA run (random 2-layer Llama on the bundled tokenizer): doctor, merge,
GGUF f16 and q8_0 through llama.cpp's converter, the llama.cpp and transformers checks,
dry runs, the Hub card, and the messages for runs that cannot be exported."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from cockpit.config import TrainConfig, config_to_yaml
from cockpit.errors import CockpitError
from cockpit.export import export_run
from cockpit.export import merge as merge_mod
from cockpit.export.doctor import run_doctor
from cockpit.export.source import load_run
from cockpit.run.status import write_status

PROBES = ["What does wv.drizzle do?", "Fix: wv.drizzle(b1, 250ml)"]


def make_lora_run(root: Path, base: Path, *, state: str = "finished", system_prompt: str | None = None) -> Path:
    """A run directory as the trainer leaves it, with a LoRA adapter whose B matrices are
    random (a fresh adapter is all zeros, and merging zeros would prove nothing)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(base))
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "up_proj"],
                                            task_type="CAUSAL_LM"))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    run = root / "2026-01-01_00-00-00-tiny"
    (run / "model").mkdir(parents=True)
    peft.save_pretrained(str(run / "model"))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(run / "model"))
    cfg = TrainConfig(model=str(base), method="lora", sample_prompts=PROBES, sample_max_new_tokens=24,
                      system_prompt=system_prompt, data="data/dsl_train.jsonl", lora_r=8, lora_alpha=16,
                      lora_target_modules=["q_proj", "v_proj", "up_proj"])
    (run / "config_used.yaml").write_text(config_to_yaml(cfg))
    write_status(run, state=state, pid=0, step=4, total_steps=4, loss=2.5)
    return run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir) -> Path:
    return make_lora_run(tmp_path_factory.mktemp("export"), tiny_model_dir)


def test_doctor_passes_on_the_tiny_model(tiny_model_dir):
    from transformers import AutoTokenizer

    report = run_doctor(tiny_model_dir, AutoTokenizer.from_pretrained(str(tiny_model_dir)), tiny_model_dir)
    assert report.ok, report.to_dict()
    names = {c.name: c for c in report.checks}
    assert names["pre-tokenizer recognised"].detail == "llama.cpp pre-tokenizer: smollm"
    assert names["architecture supported"].ok and names["end-of-turn token"].ok and report.family == "chatml"


def _copy_model(src: Path, dst: Path, **config_changes) -> Path:
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(config_changes)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_doctor_finds_vocab_and_architecture_problems(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    bad = _copy_model(tiny_model_dir, tmp_path / "bad", vocab_size=50000, architectures=["MadeUpForCausalLM"])
    report = run_doctor(bad, tok, bad)
    failed = {c.name: c for c in report.checks if not c.ok}
    assert not report.ok
    assert "MadeUpForCausalLM is not supported" in failed["architecture supported"].detail
    assert failed["vocabulary matches embeddings"].detail == (
        "config vocab_size 50000, embedding rows 49152, tokenizer 49152 tokens")
    with pytest.raises(CockpitError, match="export doctor: architecture supported"):
        report.raise_if_failed()


def test_doctor_reports_an_unknown_pre_tokenizer(tiny_model_dir, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    # A byte-level BPE with its own merges: its token hash is in no converter table.
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.train_from_iterator(["wivel drizzle fogpuff bed " * 20, "E-DRZ-12 water 250ml"],
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["<eos>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<eos>")
    report = run_doctor(tiny_model_dir, tok, tiny_model_dir)
    check = next(c for c in report.checks if c.name == "pre-tokenizer recognised")
    assert not check.ok and "does not recognise" in check.detail and "--to hf" in check.advice
    assert any(c.name == "chat template" and c.level == "warning" and not c.ok for c in report.checks)


def _llama_cpp_missing() -> str | None:
    from cockpit.export.verify import llama_cpp_available

    return llama_cpp_available()


CHATTER = ("llama_model_loader", "Loading weights", "Writing model shards", "Warning", "warn(", "it/s]",
           "INFO:hf-to-gguf", "converting to q")


def test_export_f16_passes_the_doctor_and_matches_llama_cpp(tiny_run, capfd):
    seen = []
    result = export_run(tiny_run, target="gguf", quant="f16", name="tiny-dsl", progress=seen.append,
                        verify_logits=False)
    export = tiny_run / "export"
    out, err = capfd.readouterr()
    assert not [c for c in CHATTER if c in out + err], out + err  # the libraries talked into the log instead
    log = (export / "export.log").read_text()
    assert result.log == export / "export.log" and "converter: INFO:hf-to-gguf" in log
    assert "pipeline: merge: merging the adapter into the weights" in log  # the stage timeline too
    assert result.gguf == export / "tiny-dsl-f16.gguf" and result.gguf.stat().st_size > 1_000_000
    assert result.doctor["ok"] and result.merged_dir == export / "merged"
    assert [p.name for p in export.iterdir() if p.name.startswith(".")] == []  # no partial files left
    modelfile = (export / "Modelfile").read_text()
    assert modelfile.startswith("# Modelfile written by llm-cockpit for tiny-dsl\n")
    assert f'FROM "{result.gguf}"' in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert json.loads((export / "export.json").read_text())["gguf"] == str(result.gguf)
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and seen[-1].stage == "done" and seen[-1].fraction == 1.0
    assert {"prepare", "doctor", "merge", "convert", "modelfile", "verify"} <= {p.stage for p in seen}
    reason = _llama_cpp_missing()
    if reason:
        pytest.skip(reason)
    v = result.verify
    assert v["llama_cpp"] == "ok" and v["total"] == len(PROBES)
    assert v["tokenizer_matches"] == len(PROBES)  # the GGUF's own tokenizer encodes prompts like HF's
    assert v["identical"] == len(PROBES), result.verify_summary  # f16: token for token
    assert v["forced_agreement"] == 1.0
    assert all(len(p["hf_tokens"]) > 0 for p in v["prompts"])


def test_export_q8_0_reuses_the_merge_and_agrees_with_llama_cpp(tiny_run):
    seen = []
    q8 = export_run(tiny_run, target="gguf", quant="q8_0", name="tiny-dsl", progress=seen.append,
                    verify_logits=False)
    assert q8.gguf == tiny_run / "export" / "tiny-dsl-q8_0.gguf" and q8.doctor["ok"]
    if (tiny_run / "export" / "tiny-dsl-f16.gguf").exists():
        assert q8.gguf.stat().st_size < (tiny_run / "export" / "tiny-dsl-f16.gguf").stat().st_size
        assert any(p.message == "merged model is up to date" for p in seen)  # the merge is reused
    reason = _llama_cpp_missing()
    if reason:
        pytest.skip(reason)
    assert q8.verify["llama_cpp"] == "ok" and q8.verify["tokenizer_matches"] == len(PROBES)
    # q8_0 rounds weights and activations: greedy answers may part ways at a near tie, but
    # along the HF answers llama.cpp still picks the same next token almost everywhere.
    assert q8.verify["forced_agreement"] >= 0.9, q8.verify_summary
    assert all(p["common_prefix"] >= 1 for p in q8.verify["prompts"]), q8.verify_summary


@pytest.mark.slow
def test_transformers_reads_the_gguf_back_with_the_same_logits(tiny_run):
    from cockpit.export.verify import verify_export

    export = tiny_run / "export"
    for quant, tol in (("f16", 0.01), ("q8_0", 0.05)):
        gguf = export / f"tiny-dsl-{quant}.gguf"
        if not gguf.exists():
            export_run(tiny_run, target="gguf", quant=quant, name="tiny-dsl", verify_export=False)
        report = verify_export(export / "merged", gguf, PROBES, max_new_tokens=8)
        assert report.gguf_top1_agreement >= 0.98 and report.gguf_logits_max_abs_diff < tol, report.summary()
        assert report.gguf_positions > 20


def test_merged_model_answers_like_the_adapter(tiny_run):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    src = load_run(tiny_run)
    base = Path(src.cfg.model)
    merged_dir = merge_mod.merge_adapter(src, base, "float32")
    x = torch.tensor([[1, 9690, 198, 2683, 359, 253, 5356]])
    with torch.no_grad():
        adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(src.model_dir))
        merged = AutoModelForCausalLM.from_pretrained(str(merged_dir))
        plain = AutoModelForCausalLM.from_pretrained(str(base))
        a, m, p = (mod(input_ids=x).logits for mod in (adapter, merged, plain))
    assert torch.allclose(a, m, atol=1e-4)
    assert (a - p).abs().max() > 1e-2  # the adapter changed the model, so the check above means something
    assert (merged_dir / "chat_template.jinja").is_file() and (merged_dir / "tokenizer.json").is_file()
    assert list(merged_dir.glob("*.safetensors"))


def test_dry_run_checks_and_writes_nothing(tiny_model_dir, tmp_path):
    run = make_lora_run(tmp_path, tiny_model_dir, system_prompt="Answer in Wivel.")
    result = export_run(run, target="ollama", quant="q8_0", name="dsl", dry_run=True)
    assert not (run / "export").exists()
    assert result.doctor["ok"] and result.planned_files[-1] == str(run / "export" / "Modelfile")
    assert 'SYSTEM "Answer in Wivel."' in result.modelfile_text
    assert result.preflight["params"] > 3_000_000 and result.preflight["load_dtype"] == "float32"


def test_full_fine_tune_is_converted_as_saved(tiny_model_dir, tmp_path):
    run = tmp_path / "2026-01-02_00-00-00-full"
    shutil.copytree(tiny_model_dir, run / "model")
    (run / "config_used.yaml").write_text(config_to_yaml(TrainConfig(model=str(tiny_model_dir), method="full")))
    write_status(run, state="finished", pid=0, step=1, total_steps=1)
    result = export_run(run, target="gguf", quant="bf16", name="full", dry_run=True)
    assert result.doctor["ok"] and result.planned_files == [str(run / "export" / "full-bf16.gguf"),
                                                            str(run / "export" / "Modelfile")]
    assert result.preflight["load_dtype"] == "float32"  # stored dtype: nothing to merge
    hub = export_run(run, target="hf", name="me/full", dry_run=True, merged=True)
    assert hub.hub["kind"] == "full" and "model.safetensors" in hub.planned_files
    assert "a fully fine-tuned model" in hub.hub["card"] and "lora_r" not in hub.hub["card"]
    assert any("--merged has no effect" in w for w in hub.warnings)


def test_runs_that_cannot_be_exported_say_why(tiny_model_dir, tmp_path):
    running = make_lora_run(tmp_path / "a", tiny_model_dir, state="stopped")
    with pytest.raises(CockpitError, match="is stopped, not finished") as err:
        export_run(running, target="gguf")
    assert "llm-cockpit resume" in err.value.advice
    with pytest.raises(CockpitError, match="not a valid Ollama model name"):
        export_run(make_lora_run(tmp_path / "b", tiny_model_dir), target="ollama", name="no spaces")


def test_preflight_names_the_memory_it_needs(tiny_run, monkeypatch):
    import psutil

    class Tight:  # what psutil reports on a machine with 100 MB free
        available = 100 * 1024 ** 2

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Tight())
    src = load_run(tiny_run)
    with pytest.raises(CockpitError, match=r"not enough memory to merge: 0\.\d\d GiB needed .*0\.10 GiB available"):
        merge_mod.preflight(src, Path(src.cfg.model), "f16", need_merge=True)


def test_k_quant_without_a_quantizer_names_what_is_missing(tiny_model_dir, monkeypatch, tmp_path):
    run = make_lora_run(tmp_path, tiny_model_dir)
    monkeypatch.setenv("PATH", str(tmp_path))  # no llama-quantize
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # and llama-cpp-python cannot be imported
    with pytest.raises(CockpitError) as err:
        export_run(run, target="gguf", quant="q4_k_m")
    assert "needs llama.cpp's quantizer" in err.value.message and "llama-quantize" in err.value.message
    assert "add --install-runtime" in err.value.advice and "make llama" in err.value.advice
    assert "--quant q8_0" in err.value.advice
    assert not (run / "export").exists()  # refused before any work: not even a log


def test_without_llama_cpp_f16_is_written_and_the_skipped_proof_says_how_to_get_it(tiny_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # llama-cpp-python cannot be imported
    seen = []
    result = export_run(tiny_run, target="gguf", quant="f16", name="no-llama", progress=seen.append,
                        verify_logits=False)
    assert result.gguf.is_file() and result.modelfile.is_file() and result.llama_cpp_installed is None
    assert result.verify["llama_cpp"] == "skipped" and "install" not in {p.stage for p in seen}
    assert "llama.cpp check skipped" in result.verify_summary and "--install-runtime" in result.verify_summary
    note = next(w for w in result.warnings if w.startswith("llama.cpp proof skipped"))
    assert "llama-cpp-python is not installed" in note and "--install-runtime" in note and "make llama" in note


def test_q4_k_m_chatter_goes_to_the_log_and_quantize_is_a_stage(tiny_run, capfd):
    from cockpit.export import runtime

    if runtime.import_problem() and not runtime.quantize_program():
        pytest.skip("no llama.cpp quantizer here")
    seen = []
    result = export_run(tiny_run, target="gguf", quant="q4_k_m", name="tiny-dsl", progress=seen.append,
                        verify_export=False)
    out, err = capfd.readouterr()
    assert result.gguf.name == "tiny-dsl-q4_k_m.gguf" and result.gguf.is_file()
    assert [s for s in dict.fromkeys(p.stage for p in seen)] == ["prepare", "doctor", "merge", "convert", "quantize",
                                                                  "modelfile", "done"]
    assert not [c for c in CHATTER if c in out + err], out + err
    # (whether llama.cpp's loader dump reaches the log depends on an earlier Llama(verbose=False) in this
    # process, which silences it: the CLI test, a fresh process, checks that the log holds it)
    assert "pipeline: quantize: quantizing to q4_k_m" in (tiny_run / "export" / "export.log").read_text()


@pytest.mark.slow
def test_q4_k_m_through_llama_cpp_library(tiny_run, monkeypatch, tmp_path):
    reason = _llama_cpp_missing()
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("PATH", str(tmp_path) + ":" + str(Path(sys.executable).parent))  # no llama-quantize binary
    result = export_run(tiny_run, target="gguf", quant="q4_k_m", name="tiny-dsl")
    assert result.gguf.name == "tiny-dsl-q4_k_m.gguf" and result.verify["llama_cpp"] == "ok"
    assert not list((tiny_run / "export").glob(".*intermediate*"))


def test_hub_dry_run_lists_the_adapter_and_writes_the_card(tiny_run):
    (tiny_run / "eval.json").write_text(json.dumps({"finetuned": {"exact_match": 0.62, "rouge_l": 0.81},
                                                     "baseline": {"exact_match": 0.05, "rouge_l": 0.2}}))
    try:
        result = export_run(tiny_run, target="hf", name="me/tiny-dsl", dry_run=True)
    finally:
        (tiny_run / "eval.json").unlink()
    files = [f["path"] for f in result.hub["files"]]
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md"} <= set(files)
    card = result.hub["card"]
    assert "library_name: peft" in card and "| lora_r | 8 |" in card
    assert "| metric | finetuned | baseline |" in card and "| exact_match | 0.62 | 0.05 |" in card
    assert 'AutoPeftModelForCausalLM.from_pretrained("me/tiny-dsl")' in card
    assert "training file: `dsl_train.jsonl` (72 examples)" in card
    with pytest.raises(CockpitError, match="not a valid Hugging Face repository id"):
        export_run(tiny_run, target="hf", name="me/has space", dry_run=True)
