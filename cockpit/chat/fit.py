"""Will a model fit for chatting? An inference-size estimate, checked before any weight loads.

Chat holds a model for generation only: no gradients, no optimizer, no activations kept
for a backward pass. What is alive while it answers:

* **weights** at the dtype they load in (``dtype="auto"``: as stored, so the safetensors
  bytes on disk; a ``.gguf`` given as a model is dequantized to fp32 when it is
  materialized, 4 bytes per parameter; a LoRA adapter adds its own file);
* **KV cache** for the whole context: 2 (k and v) x layers x kv_heads x head_dim x context
  tokens, in the weights' dtype (llama.cpp: f16);
* **runtime**: on the CPU the thread pools and kernel code (:data:`cockpit.planning.memory.CPU_BASE_OVERHEAD`
  plus a MiB per layer, measured for training in docs/calibration.md) and one step's fp32
  logits; on a GPU the CUDA context (:data:`cockpit.planning.memory.CUDA_CONTEXT_BYTES`) and the
  caching allocator's slack (:data:`cockpit.planning.memory.CUDA_FRAGMENTATION`).

A model is refused when this estimate is above the free memory (available RAM on the CPU,
the GPU's free memory from the driver on CUDA), with one line that names the estimate,
what is free and what to do. Every check goes through a :class:`MemoryBudget`, whose free
memory can be fixed (``free_bytes``): tests and "what if" runs use it, and each model
admitted is taken out of it, so a second model (a full fine-tune's base) is checked
against what the first one left.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.errors import CockpitError
from cockpit.planning.memory import CPU_BASE_OVERHEAD, CPU_LAYER_OVERHEAD, CUDA_CONTEXT_BYTES, CUDA_FRAGMENTATION
from cockpit.run.words import fmt_bytes

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}


@dataclass(frozen=True)
class InferenceEstimate:
    """Bytes one model needs while it answers (module docstring)."""

    what: str
    weights: int
    kv_cache: int
    runtime: int
    context: int
    basis: str  # where the weight size came from: "files", "catalog", "gguf header", ...

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.runtime

    def breakdown(self) -> str:
        return (f"weights {fmt_bytes(self.weights)} + KV cache {fmt_bytes(self.kv_cache)} for {self.context} "
                f"tokens + runtime {fmt_bytes(self.runtime)}")


def estimate(what: str, weights: int, *, layers: int, kv_dim: int, context: int, device: str,
             kv_bytes_per_value: int = 2, vocab: int = 0, basis: str = "files") -> InferenceEstimate:
    """The inference estimate of one model from its weight bytes and architecture numbers."""
    kv = 2 * layers * kv_dim * context * kv_bytes_per_value
    if device == "cuda":
        runtime = CUDA_CONTEXT_BYTES + int(CUDA_FRAGMENTATION * (weights + kv))
    else:
        runtime = CPU_BASE_OVERHEAD + layers * CPU_LAYER_OVERHEAD + 4 * vocab * 2
    return InferenceEstimate(what, int(weights), int(kv), int(runtime), context, basis)


def hf_estimate(what: str, model_dir: Path | None, spec: Any, *, context: int, device: str,
                extra_weights: int = 0) -> InferenceEstimate:
    """A transformers model: weight bytes from its safetensors headers when ``model_dir`` holds
    them (exact, read without loading), else from ``spec`` (a catalog/config/GGUF
    :class:`~cockpit.models.catalog.ModelSpec`: parameters x dtype). ``extra_weights``: an adapter."""
    from cockpit.export.source import weight_files, weights_summary

    if model_dir is not None and weight_files(model_dir):
        _, weights, dominant = weights_summary(model_dir)
        per_value = {"F32": 4, "F64": 8}.get(dominant, 2)
        basis = "safetensors files"
    else:
        per_value = DTYPE_BYTES.get(str(spec.dtype).replace("torch.", ""), 2)
        weights = spec.params * per_value
        basis = "gguf header (fp32 once materialized)" if spec.source == "gguf" else f"{spec.source} parameter count"
    return estimate(what, weights + extra_weights, layers=spec.layers, kv_dim=spec.kv_dim, context=context,
                    device=device, kv_bytes_per_value=per_value, vocab=spec.vocab, basis=basis)


def gguf_estimate(path: Path, *, context: int) -> InferenceEstimate:
    """A GGUF in llama.cpp: the file (mapped whole), an f16 KV cache, the CPU runtime."""
    from cockpit.models.catalog import spec_from_gguf

    spec = spec_from_gguf(path)
    return estimate(f"the GGUF {path.name}", path.stat().st_size, layers=spec.layers, kv_dim=spec.kv_dim,
                    context=context, device="cpu", kv_bytes_per_value=2, vocab=spec.vocab, basis="file size")


def measured_free(device: str) -> int:
    """Free memory now: the GPU's (driver) on CUDA, else available RAM (container limits included)."""
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free)
    from cockpit.planning.hardware import HardwareProfile, _probe_cpu

    profile = HardwareProfile()
    _probe_cpu(profile)
    return int(profile.ram_available)


class MemoryBudget:
    """Free memory for the models of one chat: measured at each check, or fixed (``free_bytes``,
    the same for every device) minus what was admitted already."""

    def __init__(self, free_bytes: int | None = None) -> None:
        self.fixed = free_bytes
        self.admitted: list[InferenceEstimate] = []

    def free(self, device: str) -> int:
        if self.fixed is not None:
            return max(0, self.fixed - sum(e.total for e in self.admitted))
        return measured_free(device)

    def check(self, est: InferenceEstimate, device: str, advice: str) -> None:
        """Raise :class:`CockpitError` (one line: estimate, free memory, ``advice``) when ``est``
        does not fit."""
        free = self.free(device)
        where = "GPU memory" if device == "cuda" else "RAM"
        if est.total > free:
            raise CockpitError(
                f"{est.what} needs about {fmt_bytes(est.total)} to chat ({est.breakdown()}), "
                f"but only {fmt_bytes(free)} of {where} is free", advice)

    def admit(self, est: InferenceEstimate, device: str, advice: str) -> None:
        """:meth:`check`, then count ``est`` as loaded."""
        self.check(est, device, advice)
        self.admitted.append(est)


def too_big_advice(device: str, *, run: bool) -> str:
    """What to do when a model does not fit."""
    parts = ["close other programs that hold memory"]
    if device == "cuda":
        parts.append("or use a GPU with more free memory")
    if run:
        parts.append("or export the run to a quantized GGUF (llm-cockpit export RUN --quant q4_k_m) "
                     "and chat with that file")
    else:
        parts.append("or chat with a smaller or quantized model (a q4_k_m .gguf)")
    return ", ".join(parts)
