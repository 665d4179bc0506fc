"""Which speed-ups a run uses, decided in one place: the loss only where it is learned,
packing, Liger's fused kernels and the attention implementation.

Each setting is ``auto`` by default and :func:`resolve_speedups` turns it into what this
run gets, from the model family, the device, the dtype and what is installed, with a line
for each choice a user may wonder about. An explicit request that cannot work
(``kernels=liger`` without CUDA, ``attn=flash_attention_2`` in fp32 or without the
``flash-attn`` package) is refused with one line, before any run directory exists
(:func:`check_speedups`, from the launcher's preflight) and again in the trainer.

Exactness is what decides ``auto``: a speed-up is on only where it gives the same loss as
transformers' plain recipe (``tests/unit/test_learned_loss.py``, ``test_speedups.py``).

* **learned loss** (``cockpit.training.learned_loss``): exact for every family whose causal-LM head
  is a plain linear layer with nothing after it. Gemma 2 (and Gemma 3 where set) soft-cap
  the logits, Cohere and Granite scale them: those keep transformers' loss.
* **packing** (``cockpit.data.tokenize.DataCollator``): one row per batch, examples kept apart by
  restarting ``position_ids``; exact where transformers builds the attention mask from them
  (``masking_utils.find_packed_sequence_indices``; FlashAttention's varlen path), which is
  every family below. Models with positions of their own (ALiBi, learned absolute positions
  without position ids) are not packed.
* **liger** (``kernels``): Liger's Triton kernels through transformers' own switch
  (``TrainingArguments.use_liger_kernel``), CUDA only, for the families Liger patches.
* **attention** (``attn``): FlashAttention 2 on CUDA in fp16/bf16 when ``flash_attn`` is
  installed, else PyTorch's SDPA (fused, memory-efficient kernels on a GPU); with packing,
  SDPA one example at a time (``cockpit.training.packed_attention``) instead of over the whole row.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

from cockpit.errors import CockpitError
from cockpit.training.packed_attention import NAME as PACKED_SDPA

KERNELS = ("auto", "none", "liger")
ATTENTIONS = ("auto", "sdpa", "eager", "flash_attention_2")
PACKING = ("auto", "true", "false")

# Causal-LM heads that are one linear layer with nothing after it (checked in transformers'
# modeling code: `logits = self.lm_head(hidden_states[:, slice_indices, :])`, then the loss).
PLAIN_HEAD_FAMILIES = frozenset({
    "llama", "mistral", "qwen2", "qwen3", "phi3", "smollm3", "olmo", "olmo2", "gemma", "starcoder2",
    "stablelm", "gpt2", "gpt_neox", "phi",
})
# Families whose head may be followed by soft-capping: plain when the config turns it off.
SOFTCAP_FAMILIES = frozenset({"gemma2", "gemma3", "gemma3_text"})
# Families whose attention masks come from transformers' masking utilities with position ids,
# so a packed row's examples never see each other.
PACKABLE_FAMILIES = PLAIN_HEAD_FAMILIES | SOFTCAP_FAMILIES | {"mixtral", "qwen2_moe", "qwen3_moe", "granite",
                                                              "cohere", "cohere2"}


@dataclass(frozen=True)
class Speedups:
    """What one run uses; ``notes`` says why where it is not the obvious choice."""

    learned_loss: bool
    packing: bool
    liger: bool
    attn: str
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the run's info event: ``loss on learned positions, packing, sdpa``."""
        attn = "sdpa per packed example" if self.attn == PACKED_SDPA else self.attn
        parts = ["loss on learned positions only" if self.learned_loss else "loss over every position",
                 "packing" if self.packing else "padding", f"attention {attn}"]
        if self.liger:
            parts.append("Liger kernels")
        return ", ".join(parts)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def liger_families() -> frozenset[str]:
    """The model types Liger can patch, from the installed Liger itself (empty without it)."""
    try:
        from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN
    except Exception:  # noqa: BLE001 - not installed, or no triton on this machine
        return frozenset()
    return frozenset(MODEL_TYPE_TO_APPLY_LIGER_FN)


def plain_head(model_type: str, model_config: Any = None) -> bool:
    """Whether the family's logits are exactly ``lm_head(hidden)`` (the learned loss is exact)."""
    if model_type in PLAIN_HEAD_FAMILIES:
        return True
    return model_type in SOFTCAP_FAMILIES and not getattr(model_config, "final_logit_softcapping", None)


def resolve_speedups(cfg: Any, model_type: str, device: str, dtype_name: str, model_config: Any = None,
                     distributed: str | None = None) -> Speedups:
    """The speed-ups of a run of ``cfg`` (its ``learned_loss``, ``packing``, ``kernels`` and
    ``attn``) for a model of ``model_type`` on ``device`` in ``dtype_name``.
    ``distributed``: ``fsdp`` or ``deepspeed`` when an accelerate config shards the model
    (its output layer is not whole outside the model's forward: no learned loss then)."""
    notes: list[str] = []
    family = model_type or "unknown"
    if getattr(cfg, "is_preference", False):
        # TRL computes a preference stage's loss from its own log-probabilities, on padded rows
        half = dtype_name in ("float16", "bfloat16")
        fa = device == "cuda" and half and installed("flash_attn") and cfg.attn in ("auto", "flash_attention_2")
        return Speedups(learned_loss=False, packing=False, liger=False,
                        attn="flash_attention_2" if fa else ("sdpa" if cfg.attn == "auto" else cfg.attn),
                        notes=[f"stage={cfg.stage}: TRL's loss on padded rows (no packing, no learned-position loss)"])
    learned = bool(cfg.learned_loss)
    if learned and not plain_head(family, model_config):
        learned = False
        notes.append(f"loss over every position: the {family} family's logits are not known to be just its "
                     "output layer's (soft-capping or scaling in some families), so only transformers' own loss "
                     "is exact")
    if learned and distributed:
        learned = False
        notes.append(f"loss over every position: under {distributed} the output layer's weights are sharded")

    if cfg.packing == "auto":
        packing = family in PACKABLE_FAMILIES
        if not packing:
            notes.append(f"padding instead of packing: packing is not known to be exact for the {family} family "
                         "(packing=true forces it)")
    else:
        packing = cfg.packing == "true"

    liger = False
    if cfg.kernels == "liger":
        if device != "cuda":
            raise CockpitError("kernels=liger needs a CUDA GPU: Liger's kernels are written in Triton",
                               "leave kernels=auto (the CPU trains with PyTorch's own kernels)")
        if not installed("liger_kernel"):
            raise CockpitError("kernels=liger needs the liger-kernel package", "pip install liger-kernel")
        if family not in liger_families():
            raise CockpitError(f"Liger has no kernels for the {family} family",
                               f"leave kernels=auto; Liger covers {', '.join(sorted(liger_families())) or 'none'}")
        liger = True
    elif cfg.kernels == "auto" and device == "cuda" and installed("liger_kernel") and family in liger_families():
        liger = True

    half = dtype_name in ("float16", "bfloat16")
    if cfg.attn == "flash_attention_2":
        if device != "cuda":
            raise CockpitError("attn=flash_attention_2 needs a CUDA GPU", "leave attn=auto (SDPA)")
        if not half:
            raise CockpitError(f"attn=flash_attention_2 needs fp16 or bf16, this run trains in {dtype_name}",
                               "set precision=bf16 (or fp16), or leave attn=auto")
        if not installed("flash_attn"):
            raise CockpitError("attn=flash_attention_2 needs the flash-attn package",
                               "pip install flash-attn --no-build-isolation, or leave attn=auto")
        attn = "flash_attention_2"
    elif cfg.attn == "auto":
        if device == "cuda" and half and installed("flash_attn"):
            attn = "flash_attention_2"  # its variable-length kernel serves packed rows too
        else:
            attn = PACKED_SDPA if packing else "sdpa"
    else:
        attn = cfg.attn
    return Speedups(learned_loss=learned, packing=packing, liger=liger, attn=attn, notes=notes)


def check_speedups(cfg: Any) -> None:
    """Refuse, before a run directory exists, an explicit GPU-only request this machine
    cannot serve (the values themselves are checked by ``cockpit.config.validate``). The
    model's family is known when its config.json is here; else the trainer checks it."""
    if cfg.kernels != "liger" and cfg.attn != "flash_attention_2":
        return  # auto never refuses: it falls back
    from cockpit.training.recipe import pick_precision

    precision = pick_precision(cfg)
    family = local_model_type(cfg.model)
    if family is None and precision.device == "cuda":
        return
    resolve_speedups(cfg, family or "unknown", precision.device, precision.dtype_name)


def local_model_type(spec: str) -> str | None:
    """The ``model_type`` in the model's config.json when it is on this machine (no download)."""
    from cockpit.models.catalog import read_model_config
    from cockpit.models.sources import locate_model

    try:
        path = locate_model(spec)
        if path is None or not (path / "config.json").is_file():
            return None  # a hub model not downloaded yet, a bundled model not materialized yet
        return str(read_model_config(path / "config.json").get("model_type") or "") or None
    except CockpitError:
        return None
