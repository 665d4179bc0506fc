"""The one training setup every variant shares.

The plain recipes read these constants and the cockpit variants turn them into
``key=value`` overrides, so no variant can drift from the others: the same model, data,
adapter, optimizer schedule, batch and seed, with no evaluation, no checkpoints and no
sample generation inside the training loop. Only the data pipeline differs, which is
what the benchmark compares.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DATA = "data/dsl_train.jsonl"
SEED = 42
DEFAULT_STEPS = 24

BATCH_SIZE = 4
GRAD_ACCUM = 1
LR = 1e-3
LR_SCHEDULER = "cosine"
WARMUP_RATIO = 0.05
WEIGHT_DECAY = 0.0
MAX_GRAD_NORM = 1.0
MAX_LENGTH = 512  # the workshop's max length; the padded recipe pads every example to it

LORA_R = 16
LORA_ALPHA = 32
LORA_DROPOUT = 0.0
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def cockpit_overrides(steps: int, output_dir: Path, **settings: str) -> list[str]:
    """``llm-cockpit train`` overrides for the shared setup, plus ``settings`` (e.g.
    ``packing="false"``); what is not given stays at the cockpit's default.

    Notes on what cannot be switched off in the cockpit: it always generates one
    answer per probe prompt from the base model (with LoRA right after the first step,
    adapters switched off) and one after training (the final sample).
    ``sample_count=1 sample_max_new_tokens=1`` shrinks that to one token each; neither
    counts in the loop's clock (``elapsed_s`` leaves the base answers out), so they only
    show in the whole-process time. It also always saves the final adapter, which the
    recipes do too.
    """
    pairs = {
        "model": MODEL_ID, "data": DATA,
        "eval_data": "",  # the preset holds out an eval file: none here
        "eval_split": 0,  # and no share of the training data is carved out for eval
        "eval_steps": 0,
        "method": "lora", "max_steps": steps, "batch_size": BATCH_SIZE, "grad_accum": GRAD_ACCUM,
        "lr": LR, "lr_scheduler": LR_SCHEDULER, "warmup_ratio": WARMUP_RATIO,
        "weight_decay": WEIGHT_DECAY, "max_grad_norm": MAX_GRAD_NORM, "max_length": MAX_LENGTH,
        "lora_r": LORA_R, "lora_alpha": LORA_ALPHA,
        "lora_dropout": LORA_DROPOUT, "lora_target_modules": ",".join(LORA_TARGETS),
        "grad_ckpt": "false", "precision": "fp32",
        "save_steps": 10**9,  # never reached: no checkpoint inside the loop
        "logging_steps": 1, "sample_every": 0, "sample_count": 1, "sample_max_new_tokens": 1,
        "early_stopping_patience": 0, "seed": SEED, "output_dir": str(output_dir),
        "run_name": "bench", **settings,
    }
    return [f"{key}={value}" for key, value in pairs.items()]
