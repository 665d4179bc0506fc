"""Proof of the memory estimate: real training steps, measured peaks, next to the estimate.

Each :class:`CalibrationCase` runs in a fresh Python process (``python -m cockpit.planning.calibrate
--worker``), so no memory of an earlier case or of the caller is counted:

1. apply :func:`cockpit.planning.hardware.tune_cpu_allocator` (unless the case says not to), import
   torch, transformers, peft, the model's modeling code (and bitsandbytes for int8/qlora),
   then record the **baseline**: the resident set size (RSS) after the imports and before
   the model is loaded. Import cost is not training memory; everything after it (weights,
   adapters, optimizer, activations, allocator and thread-pool growth) is.
2. load the model exactly as the trainer does (:func:`cockpit.training.recipe.load_model`: PEFT
   LoRA, bitsandbytes NF4 double-quant for qlora, gradient checkpointing), drop the
   page-cache pages of the memory-mapped checkpoint (reclaimable: see
   :func:`_drop_checkpoint_pages`), then reset the kernel's peak-RSS counter
   (``/proc/self/clear_refs``) so copies made while loading are not counted as training;
3. run ``steps`` real steps like the HF Trainer: forward with the loss, backward, gradient
   clipping at 1.0, fused AdamW step, gradients set to None. Batches are random token ids
   of length ``seq``; with more than one row the last row is half padding, as the
   trainer's padding collator produces.
4. measured = peak RSS (``VmHWM``) - baseline on the CPU; on CUDA
   ``torch.cuda.max_memory_allocated`` and ``max_memory_reserved`` (the estimate's CUDA
   context share is set aside for that comparison, since PyTorch does not count it).

``llm-cockpit calibrate --table`` runs :data:`STANDARD_CASES` and :data:`HELDOUT_CASES` and
prints the tables kept in ``docs/calibration.md``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cockpit.errors import CockpitError
from cockpit.planning.memory import ALL_LINEAR, CUDA_CONTEXT_BYTES, METHODS, estimate_memory
from cockpit.paths import cache_dir
from cockpit.run.atomic import atomic_write_json

TINY = "tiny"
BUNDLED = "smollm2-135m"


@dataclass(frozen=True)
class CalibrationCase:
    """One training configuration to measure."""

    model: str = TINY  # tiny | smollm2-135m | a model directory
    method: str = "lora"
    batch: int = 1
    seq: int = 128
    lora_r: int = 8
    grad_ckpt: bool = False
    steps: int = 3
    lora_dropout: float = 0.05
    targets: tuple[str, ...] = ALL_LINEAR
    tuned_allocator: bool = True  # cockpit.planning.hardware.tune_cpu_allocator(), as the trainer should do
    learned_loss: bool = True  # the trainer's chunked loss (cockpit.training.learned_loss); False: transformers' loss
    stage: str = "sft"  # sft, or dpo/kto: real steps of TRL's trainer (batch = pairs, seq = each sequence)


    def label(self) -> str:
        rank = f" r{self.lora_r}" if self.method != "full" else ""
        rank += " p0" if self.method != "full" and self.lora_dropout == 0 else ""
        ckpt = " ckpt" if self.grad_ckpt else ""
        name = self.model if self.model in (TINY, BUNDLED) else Path(self.model).name
        malloc = "" if self.tuned_allocator else " (default malloc)"
        loss = "" if self.learned_loss else " hf-loss"
        stage = f" {self.stage}" if self.stage != "sft" else ""
        return f"{name} {self.method}{stage}{rank} b{self.batch} s{self.seq}{ckpt}{loss}{malloc}"


@dataclass
class CalibrationResult:
    """A case with its estimate and what was measured (bytes)."""

    case: CalibrationCase
    device: str
    estimate_bytes: int
    measured_bytes: int
    baseline_rss: int = 0
    after_load_rss: int = 0
    peak_rss: int = 0
    step_peaks: list[int] = field(default_factory=list)
    cuda_allocated: int = 0
    cuda_reserved: int = 0
    peak_includes_load: bool = False
    seconds: float = 0.0
    breakdown: dict[str, int] = field(default_factory=dict)
    peak_phase: str = ""
    diagnostics: dict[str, int] = field(default_factory=dict)  # RSS split after load and after the steps

    @property
    def error(self) -> float:
        """Relative error of the estimate: (estimate - measured) / measured."""
        return (self.estimate_bytes - self.measured_bytes) / self.measured_bytes if self.measured_bytes else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["case"]["targets"] = list(self.case.targets)
        d["label"] = self.case.label()
        d["error"] = self.error
        return d


# At least six CPU configurations covering both models, seq 128/512, batch 1/4, rank 8/64,
# lora/qlora/full, with and without gradient checkpointing (issue 3).
STANDARD_CASES: tuple[CalibrationCase, ...] = (
    CalibrationCase(TINY, "lora", batch=1, seq=128, lora_r=8),
    CalibrationCase(TINY, "full", batch=4, seq=512),
    CalibrationCase(TINY, "qlora", batch=4, seq=512, lora_r=64),
    CalibrationCase(TINY, "lora", batch=4, seq=512, lora_r=8, grad_ckpt=True),
    CalibrationCase(BUNDLED, "lora", batch=1, seq=512, lora_r=8),
    CalibrationCase(BUNDLED, "lora", batch=4, seq=512, lora_r=64),
    CalibrationCase(BUNDLED, "lora", batch=4, seq=512, lora_r=8, grad_ckpt=True),
    CalibrationCase(BUNDLED, "full", batch=1, seq=128),
    CalibrationCase(BUNDLED, "full", batch=4, seq=512),
    CalibrationCase(BUNDLED, "full", batch=4, seq=512, grad_ckpt=True),
    CalibrationCase(BUNDLED, "qlora", batch=1, seq=512, lora_r=8),
    CalibrationCase(BUNDLED, "qlora", batch=4, seq=128, lora_r=64, grad_ckpt=True),
    CalibrationCase(BUNDLED, "int8", batch=1, seq=128, lora_r=8),
)

# Held out: measured after the one fitted constant (CPU_BASE_OVERHEAD) was set from the cases
# above, to check the estimate on configurations it was not tuned on.
HELDOUT_CASES: tuple[CalibrationCase, ...] = (
    CalibrationCase(TINY, "full", batch=1, seq=128),
    CalibrationCase(BUNDLED, "lora", batch=2, seq=256, lora_r=16, lora_dropout=0.0),
    CalibrationCase(BUNDLED, "lora", batch=2, seq=1024, lora_r=32),
    CalibrationCase(BUNDLED, "full", batch=2, seq=256),
    CalibrationCase(BUNDLED, "qlora", batch=2, seq=256, lora_r=16),
    CalibrationCase(BUNDLED, "int8", batch=2, seq=256, lora_r=8, grad_ckpt=True),
)

# Preference stages: real steps of TRL's trainers (its fused output layer, the reference).
PREFERENCE_CASES: tuple[CalibrationCase, ...] = (
    CalibrationCase(TINY, "lora", batch=2, seq=128, lora_r=8, stage="dpo"),
    CalibrationCase(BUNDLED, "lora", batch=1, seq=256, lora_r=16, stage="dpo"),
    CalibrationCase(BUNDLED, "full", batch=1, seq=128, stage="dpo"),
    CalibrationCase(BUNDLED, "lora", batch=2, seq=256, lora_r=16, stage="kto"),
)


def validate_case(case: CalibrationCase) -> None:
    """Raise :class:`CockpitError` for a case that cannot run."""
    if case.method not in METHODS:
        raise CockpitError(f"unknown method {case.method!r}", f"choose one of {', '.join(METHODS)}")
    if case.stage not in ("sft", "dpo", "kto"):
        raise CockpitError(f"calibration measures stage sft, dpo or kto, not {case.stage!r}", "use --stage dpo")
    if case.stage == "kto" and case.batch < 2:
        raise CockpitError("stage kto needs a batch of at least 2", "use --batch-size 2")
    for name, value in (("batch size", case.batch), ("sequence length", case.seq), ("LoRA rank", case.lora_r),
                        ("steps", case.steps)):
        if value < 1:
            raise CockpitError(f"{name} must be at least 1, got {value}", "use a positive integer")
    if case.steps < 2:
        raise CockpitError("calibration needs at least 2 steps", "the optimizer states appear at the first step")


def model_dir(model: str) -> Path:
    """The directory a case trains: the tiny random Llama, the bundled model, or a path."""
    if model == TINY:
        out = cache_dir() / "calibration" / "tiny-llama"
        if not (out / "config.json").is_file():
            _in_subprocess(["--build-tiny", str(out)], timeout=600)
        return out
    if model.lower() in (BUNDLED, "bundled"):
        from cockpit.models.sources import (
            bundled_model_dir,  # materialized once into the user cache
        )

        return bundled_model_dir()
    from cockpit.models.sources import resolve_model

    return resolve_model(model).path


def estimate_for(case: CalibrationCase, path: Path, device: str = "cpu"):
    """The estimator's answer for a case (the model's numbers read from its config.json)."""
    from cockpit.models.catalog import resolve_spec

    return estimate_memory(resolve_spec(str(path)), case.method, case.batch, case.seq, case.lora_r,
                           targets=case.targets, grad_ckpt=case.grad_ckpt, device=device,
                           lora_dropout=case.lora_dropout, learned_loss=case.learned_loss, stage=case.stage)


def run_case(case: CalibrationCase, timeout: float = 1800) -> CalibrationResult:
    """Measure one case in a fresh subprocess and pair it with the estimate."""
    validate_case(case)
    path = model_dir(case.model)
    with tempfile.TemporaryDirectory(prefix="cockpit-calib-") as tmp:
        out = Path(tmp) / "result.json"
        payload = json.dumps({**asdict(case), "targets": list(case.targets), "path": str(path)})
        _in_subprocess(["--worker", payload, str(out)], timeout=timeout)
        measured = json.loads(out.read_text(encoding="utf-8"))
    device = measured["device"]
    est = estimate_for(case, path, device)
    if device == "cuda":  # PyTorch's counters leave out the CUDA context the estimate includes
        measured_bytes = measured["cuda_reserved"]
        estimate_bytes = est.total_bytes - CUDA_CONTEXT_BYTES
    else:
        measured_bytes = measured["peak_rss"] - measured["baseline_rss"]
        estimate_bytes = est.total_bytes
    return CalibrationResult(
        case=case, device=device, estimate_bytes=estimate_bytes, measured_bytes=measured_bytes,
        baseline_rss=measured["baseline_rss"], after_load_rss=measured["after_load_rss"],
        peak_rss=measured["peak_rss"], step_peaks=measured["step_peaks"],
        cuda_allocated=measured["cuda_allocated"], cuda_reserved=measured["cuda_reserved"],
        peak_includes_load=measured["peak_includes_load"], seconds=measured["seconds"],
        breakdown=est.breakdown, peak_phase=est.peak_phase,
        diagnostics={k: measured[k] for k in ("base_anon", "base_file", "after_load_anon", "after_load_file",
                                              "end_anon", "end_file", "end_rss", "dropped_checkpoint_pages")},
    )


def _in_subprocess(args: list[str], timeout: float) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    try:
        proc = subprocess.run([sys.executable, "-m", "cockpit.planning.calibrate", *args], capture_output=True, text=True,
                              timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CockpitError(f"calibration step timed out after {timeout:.0f} s", "try a smaller case") from exc
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise CockpitError(f"calibration subprocess failed: {lines[-1] if lines else f'exit {proc.returncode}'}",
                           "run it with --debug, or check that torch, transformers and peft import")


def results_table(results: list[CalibrationResult]) -> str:
    """A Markdown table: configuration, estimate, measurement, error."""
    mib = 2**20
    rows = ["| configuration | device | estimate MiB | measured MiB | error | peak phase | s |",
            "| --- | --- | ---: | ---: | ---: | --- | ---: |"]
    for r in results:
        rows.append(f"| {r.case.label()} | {r.device} | {r.estimate_bytes / mib:,.0f} | {r.measured_bytes / mib:,.0f} "
                    f"| {r.error * 100:+.1f}% | {r.peak_phase} | {r.seconds:.0f} |")
    return "\n".join(rows)


# --- the worker (runs in the fresh subprocess) -----------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return _rss()


def _rss_split() -> tuple[int, int]:
    """(anonymous, file-backed) resident bytes of this process."""
    anon = file = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                anon = int(line.split()[1]) * 1024
            elif line.startswith("RssFile:"):
                file = int(line.split()[1]) * 1024
    return anon, file


def _drop_checkpoint_pages(model_dir: Path) -> int:
    """Drop the resident pages of the memory-mapped checkpoint files; returns how many bytes.

    Loading reads every weight through a memory map of the safetensors file, and those clean
    page-cache pages stay in RSS while the map lives (quantized loads keep it for the
    embeddings). The kernel reclaims them under pressure, so they are not training memory:
    we drop them the same way (MADV_DONTNEED); pages training touches again fault back in
    and are counted.
    """
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    root = str(model_dir.resolve())
    before = _rss_split()[1]
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].strip().startswith(root):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                libc.madvise(start, end - start, 4)  # MADV_DONTNEED
    return max(0, before - _rss_split()[1])


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # 5 = reset the peak RSS to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _worker(payload: dict[str, Any], out: Path) -> None:
    import gc

    if payload.get("tuned_allocator", True):
        from cockpit.planning.hardware import tune_cpu_allocator

        tune_cpu_allocator()  # before any tensor exists, as a trainer would at start-up

    import torch
    import transformers  # noqa: F401 - part of the baseline
    from peft import LoraConfig  # noqa: F401 - part of the baseline
    from transformers.models.llama import modeling_llama  # noqa: F401 - imported lazily by from_pretrained

    from cockpit.config import config_from_dict
    from cockpit.training.recipe import load_model, pick_precision

    method = payload["method"]
    if method in ("int8", "qlora"):
        import bitsandbytes  # noqa: F401 - the trainer imports it before loading, so does the baseline
    if payload.get("stage", "sft") != "sft":
        import datasets  # noqa: F401 - the trainer imports both before loading, so does the baseline
        import trl  # noqa: F401
    cuda = torch.cuda.is_available()
    gc.collect()
    baseline = _rss()
    base_anon, base_file = _rss_split()
    started = time.time()

    cfg = config_from_dict({
        "model": payload["path"], "method": method, "batch_size": payload["batch"], "max_length": payload["seq"],
        "lora_r": payload["lora_r"], "lora_alpha": 2 * payload["lora_r"], "lora_dropout": payload["lora_dropout"],
        "lora_target_modules": payload["targets"], "grad_ckpt": payload["grad_ckpt"],
    })
    precision = pick_precision(cfg)
    stage = payload.get("stage", "sft")
    model = load_model(cfg, Path(payload["path"]), precision, attach_lora=stage == "sft")
    device = "cuda" if precision.device == "cuda" else "cpu"
    if device == "cuda" and method in ("full", "lora"):
        model.to("cuda")
    model.train()
    gc.collect()
    dropped = _drop_checkpoint_pages(Path(payload["path"]))
    after_load = _rss()
    load_anon, load_file = _rss_split()
    reset = _reset_hwm()
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    if stage != "sft":
        step_peaks = _preference_steps(payload, cfg, model, device)
    else:
        step_peaks = _sft_steps(payload, model, precision, device)
    end_anon, end_file = _rss_split()
    result = {
        "device": device, "baseline_rss": baseline, "after_load_rss": after_load, "peak_rss": _hwm(),
        "base_anon": base_anon, "base_file": base_file, "dropped_checkpoint_pages": dropped, "after_load_anon": load_anon, "after_load_file": load_file,
        "end_anon": end_anon, "end_file": end_file, "end_rss": _rss(),
        "step_peaks": step_peaks, "peak_includes_load": not reset, "seconds": round(time.time() - started, 1),
        "cuda_allocated": torch.cuda.max_memory_allocated() if cuda else 0,
        "cuda_reserved": torch.cuda.max_memory_reserved() if cuda else 0,
    }
    atomic_write_json(out, result)


def _preference_steps(payload: dict[str, Any], cfg, model, device: str) -> list[int]:
    """``steps`` real steps of TRL's trainer for the case's stage, the peak after each: every
    sequence ``seq`` tokens (half prompt, half answer; the rejected answer as long as the
    chosen one), as the estimate assumes. The reference (a copy for full) is TRL's own."""
    import dataclasses
    import tempfile

    from datasets import Dataset
    from transformers import TrainerCallback

    from cockpit.training.recipe import load_tokenizer
    from cockpit.training.stages import build_trainer

    tokenizer = load_tokenizer(Path(payload["path"]))
    b, s = payload["batch"], payload["seq"]
    half = max(1, s // 2)
    # " a" is one token in the Llama/SmolLM2 vocabularies; TRL adds the EOS to each answer
    prompt, answer = "a" + " a" * (half - 1), " b" * (s - half - 1)
    rows = [{"prompt": prompt, "chosen": answer, "rejected": answer.replace("b", "c")}] * (b * payload["steps"])
    if payload["stage"] == "kto":
        rows = [{"prompt": prompt, "completion": r["chosen"], "label": i % 2 == 0} for i, r in enumerate(rows)]
    peaks: list[int] = []

    class Peaks(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            peaks.append(_hwm())

    cfg = dataclasses.replace(cfg, stage=payload["stage"], max_length=s + 2, lr=1e-4)
    with tempfile.TemporaryDirectory(prefix="cockpit-calib-trl-") as tmp:
        kwargs = dict(output_dir=tmp, per_device_train_batch_size=b, max_steps=payload["steps"], learning_rate=1e-4,
                      save_strategy="no", report_to="none", disable_tqdm=True, logging_steps=1,
                      use_cpu=device == "cpu", dataloader_num_workers=0)
        trainer = build_trainer(cfg, model, kwargs, Dataset.from_list(rows), None, tokenizer, [Peaks()],
                                new_adapter=cfg.uses_lora)
        trainer.train()
    return peaks


def _sft_steps(payload: dict[str, Any], model, precision, device: str) -> list[int]:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=True)  # the HF Trainer's default (adamw_torch_fused)
    vocab = model.get_input_embeddings().weight.shape[0]
    learned = None
    if payload.get("learned_loss", True):
        from cockpit.training.learned_loss import LearnedLoss, chunk_rows

        learned = LearnedLoss(model, chunk_rows(vocab, device))
    gen = torch.Generator().manual_seed(0)
    b, s = payload["batch"], payload["seq"]
    step_peaks = []
    for _ in range(payload["steps"]):
        ids = torch.randint(3, vocab, (b, s), generator=gen)
        mask = torch.ones(b, s, dtype=torch.long)
        if b > 1:
            mask[-1, s // 2:] = 0  # the collator pads to the longest row; the shortest is half
        labels = ids.masked_fill(mask == 0, -100)
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        if device == "cuda":
            batch = {k: v.to("cuda") for k, v in batch.items()}
        autocast = torch.autocast("cuda", dtype=torch.bfloat16 if precision.bf16 else torch.float16,
                                  enabled=device == "cuda" and (precision.bf16 or precision.fp16))
        with autocast:
            if learned is None:
                loss = model(**batch).loss  # the output (and its logits) is dropped before backward, as in Trainer
            else:  # as the trainer's LearnedLossTrainer: the head skipped, the loss on the learned positions
                with learned.capturing():
                    outputs = model(**{k: v for k, v in batch.items() if k != "labels"})
                loss = learned(outputs, batch["labels"])
                del outputs
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        del loss, batch
        step_peaks.append(_hwm())
    return step_peaks


def _build_tiny(out: Path) -> None:
    from cockpit.models.sources import build_tiny_model

    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    build_tiny_model(tmp)
    if out.exists():  # another process built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.replace(out)


def _main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "--worker":
        _worker(json.loads(argv[1]), Path(argv[2]))
        return 0
    if len(argv) == 2 and argv[0] == "--build-tiny":
        _build_tiny(Path(argv[1]))
        return 0
    raise SystemExit("usage: python -m cockpit.planning.calibrate --worker JSON OUT | --build-tiny DIR")


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
