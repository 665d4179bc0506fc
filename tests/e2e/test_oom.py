"""A real allocation failure (not a simulated one) ends the run 'failed' with the ladder.

64 examples of ~4,100 tokens in one batch make the logits alone 64 x 4,100 x 49,152 x 4
bytes = ~52 GB: more than this machine's RAM, so the kernel refuses the allocation at
once (heuristic overcommit) and torch raises its CPU out-of-memory error mid-step.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.run.status import read_status


def _ram_bytes() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@pytest.mark.skipif(_ram_bytes() > 40 * 2**30, reason="needs a machine whose RAM is below the ~52 GB asked for")
def test_cpu_out_of_memory_fails_the_run_with_the_oom_ladder(tmp_path, tiny_model_dir):
    data = tmp_path / "long.jsonl"
    long_answer = "glorp " * 4096
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "completion": long_answer}) + "\n" for i in range(64)))
    out = subprocess.run(
        [sys.executable, "-m", "cockpit.cli.main", "train", "--foreground", f"model={tiny_model_dir}", f"data={data}",
         f"output_dir={tmp_path / 'runs'}", "batch_size=64", "max_length=4200", "max_steps=1", "eval_split=0",
         "sample_count=1", "sample_max_new_tokens=1"],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 1, out.stderr[-2000:]
    run_dir = Path(out.stdout.strip().splitlines()[0])
    status = read_status(run_dir)
    assert status["state"] == "failed"
    assert status["error"].startswith("out of memory (host RAM)")
    assert "allocation of" in status["error"] and "GiB failed" in status["error"]
    assert "smaller batch_size" in status["advice"] and "grad_ckpt=true" in status["advice"]
    assert not (run_dir / "model").exists(), "no final model may be left by a failed run"
    assert "Traceback" not in out.stderr
