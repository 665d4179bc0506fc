"""``llm-cockpit doctor``, ``plan`` and ``calibrate`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cockpit.models.catalog import load_catalog
from cockpit.cli.main import main
from cockpit.planning.memory import BREAKDOWN_KEYS

GIB = 2**30
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1"}


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=OFFLINE, check=False)


def plan_json(capsys, *args: str) -> dict:
    assert main(["plan", *args, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_doctor_json_on_a_machine_without_gpu():
    out = cli("doctor", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)  # one JSON document, nothing else on stdout
    assert data["device"] == "cpu" and data["gpus"] == []
    assert any("CPU profile" in n for n in data["notes"])
    assert data["ram_total"] > 0 and data["versions"]["torch"]


def test_doctor_text():
    out = cli("doctor")
    assert out.returncode == 0 and "CPU" in out.stdout and "Stack   torch" in out.stdout


@pytest.mark.parametrize("model_id", sorted(load_catalog()))
def test_plan_works_offline_for_every_catalog_model(capsys, model_id):
    data = plan_json(capsys, model_id, "--vram", "24")
    assert data["model"]["id"] == model_id
    assert data["total_bytes"] == sum(data["breakdown"].values())
    assert set(data["breakdown"]) == set(BREAKDOWN_KEYS)
    assert data["breakdown"]["reference"] == 0  # sft keeps no reference model
    assert isinstance(data["fits"], bool) and data["reasons"]
    assert data["recommended_method"] in (None, "full", "lora", "int8", "qlora")


def test_llama_8b_on_a_24_gib_gpu_gets_a_method_that_fits(capsys):
    data = plan_json(capsys, "meta-llama/Llama-3.1-8B", "--batch-size", "1", "--seq-len", "512", "--vram", "24")
    assert data["fits"] and data["recommended_method"] in ("lora", "int8", "qlora")
    assert data["total_bytes"] <= data["usable_bytes"] == int(0.9 * 24 * GIB)


def test_llama_8b_on_an_8_gib_gpu_gets_qlora_or_the_ladder(capsys):
    data = plan_json(capsys, "llama-3.1-8b", "--batch-size", "1", "--seq-len", "512", "--vram", "8GB")
    assert data["budget_bytes"] == 8 * GIB
    assert data["recommended_method"] == "qlora" or data["ladder"]
    assert all(step["total_bytes"] > 0 for step in data["ladder"])
    assert any("QLoRA" in r for r in data["reasons"])


def test_llama_8b_method_figures(capsys):
    full = plan_json(capsys, "llama-3.1-8b", "--method", "full", "--batch-size", "1", "--vram", "80")
    assert not full["fits"] and full["total_bytes"] > 100e9  # the as-asked verdict for an explicit method
    qlora = plan_json(capsys, "llama-3.1-8b", "--method", "qlora", "--batch-size", "1", "--grad-ckpt",
                      "--vram", "80")
    assert qlora["fits"] and qlora["total_bytes"] < 10e9


def test_plan_text_shows_breakdown_verdict_and_reasons():
    out = cli("plan", "Qwen/Qwen2.5-0.5B-Instruct", "--vram", "8", "--task", "new")
    assert out.returncode == 0, out.stderr
    for fragment in ("Memory", "weights", "activations", "logits", "Verdict  fits", "Method   lora",
                     "Why", "Its base model is Qwen/Qwen2.5-0.5B"):
        assert fragment in out.stdout


def test_plan_on_this_machine_and_a_local_model(capsys, tiny_model_dir):
    data = plan_json(capsys, str(tiny_model_dir), "--batch-size", "2", "--seq-len", "64")
    assert data["device"] == "cpu" and data["fits"] and data["model"]["source"] == "config"


def test_plan_list(capsys):
    assert main(["plan", "--list"]) == 0
    out = capsys.readouterr().out
    assert "meta-llama/Llama-3.1-8B" in out and "[gated]" in out


@pytest.mark.parametrize("args, fragment", [
    (["plan", "nobody/no-such-model"], "is not in the catalog"),
    (["plan", "qwen2.5-0.5b", "--batch-size", "-1"], "--batch-size must be at least 1"),
    (["plan", "qwen2.5-0.5b", "--seq-len", "abc"], "--seq-len must be a whole number"),
    (["plan", "qwen2.5-0.5b", "--vram", "-4"], "--vram must be a positive number"),
    (["plan", "qwen2.5-0.5b", "--method", "dora"], "--method must be one of"),
    (["plan", "qwen2.5-0.5b", "--lora-targets", "qkv"], "--lora-targets qkv not understood"),
    (["plan", "qwen2.5-0.5b", "--task", "chat"], "--task must be one of"),
    (["plan"], "plan needs a model"),
])
def test_bad_input_is_one_line_and_exit_1(args, fragment):
    out = cli(*args)
    assert out.returncode == 1
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in out.stderr


def test_a_gguf_that_is_not_a_model_is_one_line_and_exit_1(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 7)  # a header cut short
    out = cli("plan", str(bad))
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
    assert "not a readable GGUF model file" in out.stderr


def test_calibrate_one_tiny_case_end_to_end(tiny_model_dir):
    """A real (2-step) LoRA run of the tiny model in a fresh process, estimate beside measurement."""
    out = cli("calibrate", "--model", str(tiny_model_dir), "--method", "lora", "--batch-size", "1",
              "--seq-len", "128", "--steps", "2", "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert row["device"] == "cpu" and row["measured_bytes"] > 0 and row["estimate_bytes"] > 0
    assert row["peak_rss"] >= row["after_load_rss"] >= row["baseline_rss"] > 0
    assert abs(row["error"]) < 0.2  # ~110 MiB measured: a few MiB of noise is a few percent


def test_calibrate_measures_a_dpo_step_against_the_estimate(tiny_model_dir):
    """Real steps of TRL's DPOTrainer (its fused output layer dominates a tiny model's peak)."""
    out = cli("calibrate", "--model", str(tiny_model_dir), "--stage", "dpo", "--batch-size", "2",
              "--seq-len", "128", "--steps", "2", "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert row["case"]["stage"] == "dpo" and row["measured_bytes"] > 0
    assert abs(row["error"]) < 0.2, row


def test_calibrate_refuses_bad_cases():
    out = cli("calibrate", "--steps", "1")
    assert out.returncode == 1 and "at least 2" in out.stderr


@pytest.mark.slow
def test_calibration_table_is_within_15_percent():
    """The tables of docs/calibration.md (~15 minutes on 2 cores: bundled-model full fine-tuning)."""
    from cockpit.planning.calibrate import HELDOUT_CASES, PREFERENCE_CASES, STANDARD_CASES, run_case

    results = [run_case(case) for case in STANDARD_CASES + HELDOUT_CASES + PREFERENCE_CASES]
    misses = [f"{r.case.label()}: {r.error:+.1%}" for r in results if abs(r.error) > 0.15]
    assert not misses, misses
