"""The training recipe: ``setup -> train -> save -> cleanup`` on HF Trainer + PEFT.

One run directory in, events and checkpoints out. The recipe never talks to a viewer:
everything it has to say goes through the event sink (``events.jsonl``) and
``status.json``. Methods:

* ``full``  - every weight trains (AdamW: ~16 bytes per parameter plus activations);
* ``lora``  - frozen base in its training dtype, LoRA adapters on ``lora_target_modules``;
* ``int8``  - the base loaded 8-bit by bitsandbytes (LLM.int8), LoRA on top;
* ``qlora`` - the base loaded 4-bit NF4 with double quantization, LoRA on top.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from cockpit.run import events as ev
from cockpit.config import TrainConfig
from cockpit.errors import CockpitError
from cockpit.run.status import write_status
from cockpit.training.precision import PRECISION_WORDS, Precision, decide_precision

log = logging.getLogger(__name__)


def pick_precision(cfg: TrainConfig) -> Precision:
    """The precision of a run on this machine (:func:`cockpit.training.precision.decide_precision`
    asked with what torch sees)."""
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and cfg.precision in ("fp16", "bf16"):
        log.warning("precision=%s needs a GPU; training in fp32 on the CPU", cfg.precision)
    return decide_precision(cfg.precision, cfg.method, cuda, cuda and torch.cuda.is_bf16_supported())




def model_label(spec: str) -> str:
    """The model as a newcomer knows it: ``SmolLM2-135M-Instruct`` for the bundled one, a
    hub id as written, a local directory or file by its name."""
    from cockpit.models.sources import is_bundled

    spec = str(spec).strip()
    if is_bundled(spec):
        from cockpit.config import BUNDLED_MODEL

        return BUNDLED_MODEL.rsplit("/", 1)[-1]
    return source_label(spec)


def source_label(spec: str) -> str:
    """A file or directory by its name (run configs hold absolute paths), anything else as written."""
    path = Path(str(spec)).expanduser()
    return path.name if path.name and path.exists() else str(spec)


def loading_words(cfg: TrainConfig, precision: Precision) -> str:
    """What loading the model means for this config, in one sentence (the ``loading_model`` phase)."""
    where = "GPU" if precision.device == "cuda" else "CPU"
    if cfg.method == "qlora":
        how = f"4-bit NF4, {where}"
    elif cfg.method == "int8":
        how = f"8-bit, {where}"
    else:
        how = f"{PRECISION_WORDS.get(precision.dtype_name, precision.dtype_name)}, {where}"
    words = f"Loading the model {model_label(cfg.model)} ({how})"
    return words + (f" and attaching LoRA adapters (r={cfg.lora_r})" if cfg.uses_lora else "")


def load_tokenizer(model_path: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_path))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # labels of padding are -100 anyway, so EOS is a safe pad
    return tok


def load_model(cfg: TrainConfig, model_path: Path, precision: Precision, attn: str | None = None,
               attach_lora: bool = True, adapter: Path | None = None):
    """The base model for ``cfg.method``, with LoRA attached where the method uses it;
    ``attn`` is the attention implementation (``cockpit.training.speedups`` decides it).

    ``attach_lora=False`` leaves the adapters to the caller (TRL's preference trainers wrap
    the model with :func:`lora_config` themselves, and take the adapters-off model as the
    reference); ``adapter`` loads a trained adapter and keeps training it instead of a new
    one (``from_run=continue``)."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, precision.dtype_name)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if attn:
        from cockpit.training.packed_attention import NAME, register

        if attn == NAME:
            register()
        kwargs["attn_implementation"] = attn
    if cfg.method in ("int8", "qlora"):
        from transformers import BitsAndBytesConfig

        _require_bitsandbytes(cfg.method)
        if cfg.method == "qlora":
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=dtype if precision.device == "cuda" else torch.float32,
            )
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        kwargs["device_map"] = {"": local_rank} if precision.device == "cuda" else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(str(model_path), **kwargs)
    model.config.use_cache = False  # the KV cache is useless in training and costs memory
    if cfg.method in ("int8", "qlora"):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.grad_ckpt)
    elif cfg.grad_ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.uses_lora:
            model.enable_input_require_grads()  # checkpointed blocks need a grad-requiring input
    if not cfg.uses_lora:
        return model
    if adapter is not None:
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    if not attach_lora:
        return model
    from peft import get_peft_model

    return get_peft_model(model, lora_config(cfg, model))


def lora_config(cfg: TrainConfig, model):
    """The LoRA adapters of ``cfg`` for ``model``; a target the model lacks is one line."""
    from peft import LoraConfig

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in cfg.lora_target_modules if t not in present]
    if missing:
        raise CockpitError(
            f"lora_target_modules {missing} do not exist in this model",
            f"choose among its linear layers, e.g. {', '.join(sorted(p for p in present if p.endswith('proj'))[:8])}",
        )
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.lora_target_modules), task_type="CAUSAL_LM", bias="none")


def _require_bitsandbytes(method: str) -> None:
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError or a broken native library
        raise CockpitError(f"method={method} needs bitsandbytes, which could not be loaded ({exc})",
                           "pip install bitsandbytes, or train with method=lora") from exc


def trainable_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def count_tokens(model, counter) -> None:
    """Count the real (non-padding) tokens of every training forward pass into ``counter``.

    A forward pre-hook counts what the model actually consumed at the moment it consumes
    it; counting in the collator would run ahead of the steps (the Trainer prefetches the
    batches of an accumulation window). Padded batches count their attention mask, packed
    (padding-free) rows every token. Evaluation passes (model in eval mode) are not counted,
    nor forward passes without gradients (a preference stage's reference log-probabilities).
    """
    import torch

    def hook(module, args, kwargs):
        if not module.training or not torch.is_grad_enabled():
            return
        mask = kwargs.get("attention_mask")
        ids = kwargs.get("input_ids", args[0] if args else None)
        if mask is not None:
            counter.total += int(mask.sum())
        elif ids is not None:
            counter.total += int(ids.numel())

    model.register_forward_pre_hook(hook, with_kwargs=True)


def emit_error(sink: ev.EventSink, run_dir: Path, message: str, advice: str, step: int = 0, **status: Any) -> None:
    """Record a failure everywhere a viewer looks: an ``error`` event, ``run_finished`` and the status."""
    sink.emit(ev.Error(step=step, message=message, advice=advice))
    sink.emit(ev.RunFinished(step=step, state="failed", summary={"error": message}))
    write_status(run_dir, state="failed", error=message, advice=advice, **status)
