"""Merge a LoRA adapter into its base model, after checking there is room to do it.

The base is always reloaded from its unquantized weights, also for int8 and QLoRA runs:
merging into 4-bit or 8-bit weights would bake the quantization error into the result,
and llama.cpp wants real floats to convert anyway. The merge runs in fp32 when memory
allows (the adapter's small update is not lost to bf16 rounding), else in the base's
16-bit dtype, and is saved in the base's own storage dtype.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cockpit.errors import CockpitError, exception_line
from cockpit.run.atomic import read_json_object
from cockpit.export.source import RunSource, tokenizer_dir, weights_summary

log = logging.getLogger(__name__)

MERGED_DIR = "merged"
_MARKER = ".cockpit-merged.json"
GIB = 1024 ** 3
# Bytes per parameter of each GGUF output type (K-quants mix block types; these are their averages).
GGUF_BYTES_PER_PARAM = {"f16": 2.0, "bf16": 2.0, "q8_0": 1.0625, "q5_k_m": 0.72, "q4_k_m": 0.61}
_RUNTIME_OVERHEAD = 0.5 * GIB  # python, torch and the tokenizer, before any weight is loaded

Say = Callable[[str, float | None], None]


@dataclass
class Preflight:
    """Memory and disk needed by the export, measured against what the machine has."""

    params: int
    base_bytes: int
    load_dtype: str  # float32 | bfloat16 | float16: what the merge computes in
    ram_needed: int
    ram_available: int
    disk_needed: int
    disk_free: int

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def summary(self) -> str:
        return (f"{self.params / 1e6:.1f}M parameters; merge in {self.load_dtype} needs "
                f"{_gib(self.ram_needed)} RAM ({_gib(self.ram_available)} available), export needs "
                f"{_gib(self.disk_needed)} disk ({_gib(self.disk_free)} free)")


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB" if n < 10 * GIB else f"{n / GIB:.0f} GiB"


def _torch_dtype_name(st_dtype: str) -> str:
    return {"BF16": "bfloat16", "F16": "float16"}.get(st_dtype, "float32")


def preflight(source: RunSource, base_dir: Path | None, quant: str, need_merge: bool) -> Preflight:
    """Check RAM (for the merge) and free disk (merged model + GGUF) before starting.

    Raises :class:`CockpitError` with both numbers when either does not fit.
    """
    import psutil

    weights_dir = base_dir if (need_merge and base_dir is not None) else source.model_dir
    params, base_bytes, st_dtype = weights_summary(weights_dir)
    if params == 0:
        raise CockpitError(f"no .safetensors weights found in {weights_dir}",
                           "the model directory is incomplete; re-download or re-train it")
    ram_available = int(psutil.virtual_memory().available)
    storage_dtype = _torch_dtype_name(st_dtype)
    # Loading, merging in place and saving one shard at a time: the weights once, plus a
    # fifth for the shard being serialized and the LoRA deltas.
    fp32_need = int(params * 4 * 1.2 + _RUNTIME_OVERHEAD)
    half_need = int(params * 2 * 1.2 + _RUNTIME_OVERHEAD)
    if not need_merge:
        load_dtype, ram_needed = storage_dtype, int(_RUNTIME_OVERHEAD)
    elif fp32_need <= ram_available:
        load_dtype, ram_needed = "float32", fp32_need
    else:
        load_dtype = storage_dtype if storage_dtype != "float32" else "bfloat16"
        ram_needed = half_need
    merged_bytes = params * (4 if storage_dtype == "float32" else 2) if need_merge else 0
    gguf_bytes = params * GGUF_BYTES_PER_PARAM.get(quant, 2.0)
    if quant in ("q4_k_m", "q5_k_m"):
        gguf_bytes += params * 2.0  # the f16 intermediate lives until quantization ends
    disk_needed = int((merged_bytes + gguf_bytes) * 1.05) + 64 * 1024 ** 2
    where = source.export_dir if source.export_dir.is_dir() else source.run_dir
    disk_free = int(shutil.disk_usage(where).free)
    pf = Preflight(params, base_bytes, load_dtype, ram_needed, ram_available, disk_needed, disk_free)
    if ram_needed > ram_available:
        raise CockpitError(
            f"not enough memory to merge: {_gib(ram_needed)} needed (in {load_dtype}), {_gib(ram_available)} available",
            "close other programs, or merge on a machine with more RAM (the GPU is not used for merging)")
    if disk_needed > disk_free:
        raise CockpitError(
            f"not enough disk for the export: {_gib(disk_needed)} needed, {_gib(disk_free)} free in {source.export_dir}",
            "free some space (old checkpoints/ of finished runs are safe to delete)")
    return pf


def _adapter_fingerprint(source: RunSource, base_dir: Path) -> dict:
    files = sorted(p for p in source.model_dir.iterdir() if p.is_file())
    return {"base": str(base_dir), "files": {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files}}


def merged_is_current(source: RunSource, base_dir: Path) -> bool:
    """Whether ``export/merged`` was made from exactly this adapter and base (skip re-merging)."""
    marker = source.export_dir / MERGED_DIR / _MARKER
    return marker.is_file() and read_json_object(marker) == _adapter_fingerprint(source, base_dir)


def merge_adapter(source: RunSource, base_dir: Path, load_dtype: str, say: Say | None = None) -> Path:
    """Merge the run's adapter into ``base_dir`` and save ``export/merged`` (safetensors,
    tokenizer, chat template, generation config). Written to a temporary directory and
    renamed into place, so an interrupted merge never leaves a half-written model."""
    say = say or (lambda msg, frac: None)
    out = source.export_dir / MERGED_DIR
    if merged_is_current(source, base_dir):
        say("merged model is up to date", 1.0)
        return out
    base_cfg = read_json_object(base_dir / "config.json")
    if base_cfg.get("quantization_config"):
        raise CockpitError(
            f"the base model {source.cfg.model} is stored pre-quantized ({base_cfg['quantization_config'].get('quant_method', '?')})",
            "merge needs its 16-bit weights: train on the unquantized model id and let llm-cockpit quantize it")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    storage = _torch_dtype_name(weights_summary(base_dir)[2])
    say(f"loading the base model in {load_dtype}", 0.05)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=getattr(torch, load_dtype),
                                                 low_cpu_mem_usage=True)
    say("applying the adapter", 0.4)
    try:
        model = PeftModel.from_pretrained(model, str(source.model_dir))
    except Exception as exc:
        raise CockpitError(f"the adapter in {source.model_dir} does not fit the base model {source.cfg.model} "
                           f"({type(exc).__name__}: {exception_line(exc, 160)})",
                           "export with the same model= the run was trained on") from exc
    say("merging the adapter into the weights", 0.55)
    merged = model.merge_and_unload()
    merged = merged.to(getattr(torch, storage))
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir(source, base_dir)))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".merged.", dir=out.parent))
    try:
        say("saving the merged model (safetensors)", 0.7)
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        (tmp / _MARKER).write_text(json.dumps(_adapter_fingerprint(source, base_dir)), encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes it private; the merged model is an ordinary model directory
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    del merged, model
    say("merged model saved", 1.0)
    return out


def replace_dir(tmp: Path, final: Path) -> None:
    """Move the finished directory ``tmp`` to ``final``, replacing an older one; the old one
    is renamed away first so ``final`` is never a mix of both."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old.{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
