"""``llm-cockpit export`` as a user runs it, on a run trained by ``llm-cockpit train``."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def cli(*args, env=None, timeout=600):
    # stdin is no terminal, as in CI or the TUI's export screen: nothing may wait for an answer
    return subprocess.run([sys.executable, "-m", "cockpit.cli.main", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout, env=env, check=False, stdin=subprocess.DEVNULL)


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


STAGE = re.compile(r"^\[\s*\d+%\] ([^:]+): ", re.M)
# What the libraries print during an export: loader dumps, progress bars, warnings, converter lines.
CHATTER = ("llama_model_loader", "llama_model_quantize", "Loading weights", "Writing model shards", "Warning",
           "warn(", "it/s]", "INFO:hf-to-gguf", "converting to q", "WARNING ")


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name, ignore=shutil.ignore_patterns("export")))


def _without_llama_cpp(tmp_path: Path) -> dict[str, str]:
    """This interpreter's environment where ``import llama_cpp`` fails, as on a machine without it."""
    shim = tmp_path / "no-llama" / "llama_cpp"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ImportError("llama-cpp-python is not installed (test stand-in)")\n')
    return dict(os.environ, PYTHONPATH=str(shim.parent), PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin")


def test_export_without_llama_cpp_writes_the_gguf_and_names_the_skipped_proof(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    out = cli("export", str(run), "--to", "gguf", "--quant", "q8_0", "--name", "no-llama",
              env=_without_llama_cpp(tmp_path))
    assert out.returncode == 0, out.stderr
    assert (run / "export" / "no-llama-q8_0.gguf").is_file() and (run / "export" / "Modelfile").is_file()
    assert STAGE.findall(out.stderr) == ["prepare", "doctor", "merge", "convert", "Modelfile", "proof", "done"]
    assert "proof      llama.cpp check skipped (llama-cpp-python is not installed" in out.stdout
    assert ("warning: llama.cpp proof skipped: llama-cpp-python is not installed -> export again with "
            "--install-runtime") in out.stderr
    assert not [c for c in CHATTER if c in out.stdout + out.stderr], out.stdout + out.stderr
    log = (run / "export" / "export.log").read_text()
    assert "converter: INFO:hf-to-gguf" in log and "llama.cpp check skipped" in log
    assert f"log        {run / 'export' / 'export.log'}" in out.stdout


def test_k_quant_without_llama_cpp_and_no_terminal_fails_in_one_line_without_asking(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    out = cli("export", str(run), "--to", "gguf", "--quant", "q4_k_m", env=_without_llama_cpp(tmp_path), timeout=120)
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llm-cockpit: --quant q4_k_m needs llama.cpp's quantizer"), lines
    assert "add --install-runtime" in lines[0] and "[y/N]" not in out.stderr
    assert not (run / "export").exists()


def test_q4_k_m_export_prints_one_line_per_stage_and_keeps_the_chatter_in_the_log(trained_run, tmp_path):
    from cockpit.export import runtime

    if runtime.import_problem():
        pytest.skip("llama-cpp-python is not installed (make llama)")
    run = _copy(trained_run, tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin")  # the library's quantizer
    out = cli("export", str(run), "--to", "gguf", "--quant", "q4_k_m", "--name", "quiet", env=env)
    assert out.returncode == 0, out.stderr
    assert STAGE.findall(out.stderr) == ["prepare", "doctor", "merge", "convert", "quantize", "Modelfile", "proof",
                                         "done"]
    assert not [c for c in CHATTER if c in out.stdout + out.stderr], out.stdout + out.stderr
    assert "proof      llama.cpp greedy answers" in out.stdout
    log = (run / "export" / "export.log").read_text()
    assert "llama_model_loader" in log and "converter: INFO:hf-to-gguf" in log  # C-level and child output
