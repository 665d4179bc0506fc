"""Shared fixtures: the bundled tokenizer, a tiny random model on it, small data files.

The bundled tokenizer is materialized once into the user cache (~8 s the first time);
the tiny model (2 layers, hidden 64) is built once per test session.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
# Tokenized data of the tests' runs stays out of the user's cache (and its pruning).
os.environ.setdefault("LLM_COCKPIT_DATA_CACHE", tempfile.mkdtemp(prefix="cockpit-tokenized-"))
atexit.register(shutil.rmtree, os.environ["LLM_COCKPIT_DATA_CACHE"], ignore_errors=True)
# The runs registry never lands in the real home: set before any test module builds an
# environment for its subprocesses; each test then gets a fresh one (_cockpit_home).
os.environ["LLM_COCKPIT_HOME"] = tempfile.mkdtemp(prefix="cockpit-home-")
atexit.register(shutil.rmtree, os.environ["LLM_COCKPIT_HOME"], ignore_errors=True)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _cockpit_home(tmp_path_factory, monkeypatch) -> Path:
    """A state directory of its own per test (``LLM_COCKPIT_HOME``, inherited by the CLI and
    trainer subprocesses): runs one test registers never show up in another."""
    home = tmp_path_factory.mktemp("cockpit-home")
    monkeypatch.setenv("LLM_COCKPIT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    from cockpit.models.sources import bundled_tokenizer_dir

    return bundled_tokenizer_dir()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer_dir) -> Path:
    from cockpit.models.sources import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


TINY_ROWS = [
    {"prompt": f"What does glorp {i} do?", "completion": f"glorp {i} turns the valve {i % 3} times."}
    for i in range(12)
]


@pytest.fixture()
def tiny_data(tmp_path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", TINY_ROWS)


@pytest.fixture()
def tiny_config(tmp_path, tiny_model_dir, tiny_data):
    """A fast config on the tiny model: call it with overrides, get a validated TrainConfig."""
    from cockpit.config import build_config

    def make(**overrides):
        values = {
            "model": str(tiny_model_dir), "data": str(tiny_data), "eval_data": None, "eval_split": 0.2,
            "output_dir": str(tmp_path / "runs"), "max_steps": 6, "batch_size": 4, "lr": 5e-3,
            "max_length": 64, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "save_steps": 3,
            "logging_steps": 1, "eval_steps": 0, "sample_every": 0, "sample_count": 1,
            "sample_max_new_tokens": 4, "warmup_ratio": 0.0, "lr_scheduler": "constant",
        }
        values.update(overrides)
        return build_config("cpu-demo", None, values)

    return make
