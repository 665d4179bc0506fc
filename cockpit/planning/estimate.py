"""How long a run is: its optimizer steps (the one count the trainer, the wizard and the
status all use) and a rough wall time on this machine.

The step count is decided here and handed to the HF Trainer as ``max_steps``, so the
total on screen, in ``status.json`` and in the LR schedule are the same number even with
fractional epochs, gradient accumulation and several processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Effective training speed assumed for the time estimate (dense matmul FLOP/s that
# training actually reaches): ~30% of a GPU's 16-bit peak, ~20 GFLOP/s per CPU core.
GPU_TFLOPS = {"H200": 990, "H100": 990, "A100": 312, "L40": 181, "A6000": 155, "RTX 6000": 182, "4090": 165,
              "4080": 97, "3090": 71, "3080": 60, "A10": 125, "L4": 121, "V100": 125, "T4": 65}
GPU_MFU = 0.30
CPU_FLOPS_PER_CORE = 20e9
UNKNOWN_GPU_TFLOPS = 100


def held_out_count(examples: int, cfg: Any) -> int:
    """How many of ``examples`` the run keeps for evaluation when it has no eval file
    (``eval_split`` of them, at least one; :func:`cockpit.data.split_examples` does the split)."""
    if cfg.eval_data or not cfg.eval_split or examples <= 1:
        return 0
    return max(1, round(examples * cfg.eval_split))


def optimizer_steps(train_examples: int, cfg: Any, world_size: int = 1) -> int:
    """The run's optimizer steps: ``max_steps`` when set, else ``epochs`` over the batches
    of every process, rounded as the HF Trainer rounds (whole accumulation windows per
    epoch, then the fraction of epochs up). 0 when there is nothing to train on."""
    if cfg.max_steps > 0:
        return int(cfg.max_steps)
    if train_examples <= 0:
        return 0
    batches = math.ceil(train_examples / (cfg.batch_size * max(1, world_size)))
    per_epoch = max(1, math.ceil(batches / cfg.grad_accum))
    return max(1, math.ceil(cfg.epochs * per_epoch))


@dataclass
class RunEstimate:
    """Steps and rough wall time of a config on this machine."""

    train_examples: int
    steps: int
    tokens: int
    seconds: float | None
    basis: str


def training_speed(hardware: Any) -> tuple[float, str]:
    """Effective FLOP/s of this machine for training, and the sentence that says why."""
    if hardware.gpus:
        name = hardware.gpus[0].name
        peak = next((v for k, v in GPU_TFLOPS.items() if k.lower() in name.lower()), UNKNOWN_GPU_TFLOPS)
        return peak * 1e12 * GPU_MFU, f"~{GPU_MFU:.0%} of {name}'s {peak} TFLOP/s 16-bit peak"
    return hardware.cpu_cores * CPU_FLOPS_PER_CORE, f"~{CPU_FLOPS_PER_CORE / 1e9:.0f} GFLOP/s per CPU core"


def estimate_run(cfg: Any, examples: int, mean_tokens: float | None, params: int | None,
                 hardware: Any) -> RunEstimate:
    """Steps (:func:`optimizer_steps`), tokens and a rough time for ``examples`` usable rows
    of ``mean_tokens`` each, a model of ``params`` parameters (None: unknown) on ``hardware``."""
    train = examples - held_out_count(examples, cfg)
    steps = optimizer_steps(train, cfg)
    tokens = int(steps * cfg.batch_size * cfg.grad_accum * (mean_tokens or 0))
    if cfg.stage in ("dpo", "orpo"):
        tokens *= 2  # a pair is two sequences (mean_tokens counts one)
    if not params:
        return RunEstimate(train, steps, tokens, None, "unknown model size")
    flops_per_token = (6 if cfg.method == "full" else 4) * params
    speed, basis = training_speed(hardware)
    if cfg.method == "qlora":
        speed *= 0.9  # dequantizing the 4-bit weights costs ~10%
    if cfg.grad_ckpt:
        speed /= 1.3  # recomputing activations: 20-30% more time
    seconds = tokens * flops_per_token / speed if tokens else None
    return RunEstimate(train, steps, tokens, seconds, basis)


__all__ = ["optimizer_steps", "held_out_count", "estimate_run", "training_speed", "RunEstimate"]
