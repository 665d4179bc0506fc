"""The one precision decision: what ``precision=auto|bf16|fp16|fp32`` means on a machine.

Asked by the trainer (with what torch sees, :func:`cockpit.training.recipe.pick_precision`)
and by the wizard and ``plan`` (with the detected hardware), so what the review promises
is what the run does. Configs keep ``auto``: the choice is made where the run trains.
"""

from __future__ import annotations

from dataclasses import dataclass

PRECISION_WORDS = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


@dataclass
class Precision:
    """What the hardware gets: the dtype weights load in and the Trainer's mixed-precision flags."""

    device: str  # cuda | cpu
    dtype_name: str  # float32 | float16 | bfloat16
    bf16: bool
    fp16: bool

    @property
    def compute(self) -> str:
        """The 16-bit format the matmuls run in (or fp32), in the words a person knows."""
        return "bf16" if self.bf16 else "fp16" if self.fp16 else PRECISION_WORDS.get(self.dtype_name, self.dtype_name)


def decide_precision(want: str, method: str, cuda: bool, bf16_supported: bool) -> Precision:
    """auto: bf16 where the GPU supports it, else fp16; always fp32 on CPU (CPU half precision
    is slow and bitsandbytes' CPU kernels compute in fp32)."""
    if not cuda:
        return Precision("cpu", "float32", False, False)
    if want == "auto":
        want = "bf16" if bf16_supported else "fp16"
    if want == "bf16":
        # Full fine-tuning keeps fp32 master weights under bf16 autocast: pure-bf16 AdamW
        # rounds small updates away (and the memory estimate assumes the fp32 masters).
        return Precision("cuda", "float32" if method == "full" else "bfloat16", True, False)
    if want == "fp16":
        # Full fine-tuning keeps fp32 master weights under fp16 autocast (GradScaler needs them).
        return Precision("cuda", "float32" if method == "full" else "float16", False, True)
    return Precision("cuda", "float32", False, False)


def precision_for_hardware(want: str, method: str, hardware) -> Precision:
    """:func:`decide_precision` for a detected :class:`cockpit.planning.hardware.HardwareProfile`
    (its first GPU, as the trainer's rank 0 sees it)."""
    gpus = getattr(hardware, "gpus", None) or []
    return decide_precision(want, method, bool(gpus), bool(gpus and gpus[0].bf16))


__all__ = ["Precision", "decide_precision", "precision_for_hardware", "PRECISION_WORDS"]
