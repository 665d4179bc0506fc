"""Tokens live in the environment or the HF login only: never in a run directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLANTED = "hf_PlantedSecretToken1234567890abcdef"


def test_planted_tokens_appear_in_no_file_of_the_run(tmp_path, tiny_model_dir, tiny_data):
    env = dict(os.environ, HF_TOKEN=PLANTED, HUGGING_FACE_HUB_TOKEN=PLANTED, WANDB_API_KEY=PLANTED)
    out = subprocess.run(
        [sys.executable, "-m", "cockpit.cli.main", "train", "--foreground", f"model={tiny_model_dir}",
         f"data={tiny_data}", f"output_dir={tmp_path / 'runs'}", "max_steps=2", "save_steps=1", "max_length=48",
         "sample_every=1", "sample_count=1", "sample_max_new_tokens=2", "eval_steps=1"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    run_dir = Path(out.stdout.strip().splitlines()[0])
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) > 10  # config, status, events, log, checkpoints, model, TensorBoard
    leaks = [str(p) for p in files if PLANTED.encode() in p.read_bytes()]
    assert leaks == []
    assert PLANTED not in out.stdout + out.stderr
