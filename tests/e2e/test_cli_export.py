"""``llm-cockpit export`` as a user runs it, on a run trained by ``llm-cockpit train``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout, env=env, check=False)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_model_dir) -> Path:
    root = tmp_path_factory.mktemp("export-e2e")
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"What does wv.drizzle {i} do?",
                                        "completion": f"It waters bed b{i}."}) + "\n" for i in range(8)))
    out = cli("train", f"model={tiny_model_dir}", f"data={data}", "eval_data=none", "eval_split=0",
              f"output_dir={root / 'runs'}", "max_steps=2", "batch_size=2", "max_length=48", "lora_r=4",
              "sample_count=1", "sample_max_new_tokens=2", "--foreground")
    assert out.returncode == 0, out.stderr
    return Path(out.stdout.strip().splitlines()[0])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dry_run_json_is_one_document_and_writes_nothing(trained_run):
    out = cli("export", str(trained_run), "--to", "ollama", "--quant", "q8_0", "--name", "dsl", "--dry-run", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["dry_run"] and doc["doctor"]["ok"] and doc["target"] == "ollama"
    assert doc["planned_files"][-1].endswith("export/Modelfile") and "FROM" in doc["modelfile_text"]
    assert not (trained_run / "export").exists()


def test_invalid_name_is_one_line_and_exit_1(trained_run):
    out = cli("export", str(trained_run), "--name", "my model")
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "'my model' is not a valid Ollama model name" in lines[0]


def test_hub_dry_run_prints_files_and_card(trained_run):
    out = cli("export", str(trained_run), "--to", "hf", "--name", "me/dsl-adapter", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "adapter_model.safetensors" in out.stdout and "--- README.md (model card) ---" in out.stdout
    assert "library_name: peft" in out.stdout and "# dsl-adapter" in out.stdout
    assert "base_model:" not in out.stdout  # a local base directory has no hub id to link
    assert "training_args.bin" not in out.stdout  # a pickle of local settings stays home


def test_hub_upload_without_network_fails_in_one_line(trained_run):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_TOKEN")}
    env.update(HF_TOKEN="hf_notarealtoken", HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}",
               HF_HUB_ETAG_TIMEOUT="2", HF_HUB_DOWNLOAD_TIMEOUT="2")
    out = cli("export", str(trained_run), "--to", "hf", "--name", "me/dsl-adapter", env=env, timeout=180)
    assert out.returncode == 1
    lines = [ln for ln in out.stderr.strip().splitlines() if not ln.startswith("[")]  # progress lines start with [
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("llm-cockpit: upload to the Hugging Face Hub failed") and "check your network" in lines[0]
    assert "hf_notarealtoken" not in out.stderr + out.stdout


def test_hub_upload_without_token_says_how_to_log_in(trained_run, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_TOKEN")}
    env["HF_HOME"] = str(tmp_path / "hf-home")  # no stored login there
    out = cli("export", str(trained_run), "--to", "hf", "--name", "me/dsl-adapter", env=env)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        "llm-cockpit: no Hugging Face token found -> set HF_TOKEN or run: hf auth login (then export again)")


@pytest.mark.slow
def test_export_to_ollama_without_ollama_prints_the_command(trained_run):
    env = {k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"}
    env["PATH"] = str(Path(sys.executable).parent)  # no ollama program
    out = cli("export", str(trained_run), "--to", "ollama", "--name", "dsl-e2e", env=env)
    assert out.returncode == 0, out.stderr
    gguf = trained_run / "export" / "dsl-e2e-f16.gguf"
    assert gguf.is_file() and (trained_run / "export" / "Modelfile").is_file()
    assert f"chat       ollama create dsl-e2e -f {trained_run / 'export' / 'Modelfile'} && ollama run dsl-e2e" \
        in out.stdout
    assert "doctor     ok" in out.stdout and "proof      " in out.stdout
