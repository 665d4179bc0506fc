"""Loading the transformers models of a chat: the device, the weights (and a LoRA adapter on
them), the tokenizer; every failure one line. The size check comes first
(:mod:`cockpit.chat.fit`), in :class:`cockpit.chat.session.ChatSession`."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

from cockpit.chat.fit import too_big_advice
from cockpit.errors import CockpitError, exception_line

Progress = Callable[[str, str], None]


def pick_device(choice: str, say: Progress) -> str:
    say("importing", "starting PyTorch")
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise CockpitError("--device cuda, but torch sees no CUDA GPU", "use --device cpu (or auto)")
    return choice


def llama_cpp_problem() -> str | None:
    from cockpit.export.runtime import library_missing

    return library_missing()


def load_weights(path: Path, device: str, adapter: Path | None, say: Progress, tokenizer_fallback: str | None):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from cockpit.training.recipe import load_tokenizer

    # the answers are what a chat prints: no weight-loading bars or deprecation chatter around them
    hf_logging.disable_progress_bar()
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model = _from_pretrained(AutoModelForCausalLM, path, device, adapter, say)
    except Exception as exc:  # noqa: BLE001 - every load failure is one line
        from cockpit.training.oom import is_oom

        if is_oom(exc):
            raise CockpitError(f"out of memory while loading {path.name}", too_big_advice(device, run=True)) from exc
        raise CockpitError(f"could not load the model in {path}: {exception_line(exc, 200)}",
                           "is it a complete model directory? --debug shows the traceback") from exc
    model.eval()
    tok_dir = next((d for d in (adapter, path) if d is not None and _has_tokenizer(d)), None)
    if tok_dir is None and tokenizer_fallback:
        from cockpit.models.sources import resolve_model

        tok_dir = resolve_model(tokenizer_fallback).path
    return model, load_tokenizer(tok_dir or path)


def _from_pretrained(auto, path: Path, device: str, adapter: Path | None, say: Progress):
    model = auto.from_pretrained(str(path), dtype="auto")
    if device != "cpu":
        model.to(device)
    if adapter is None:
        return model
    from peft import PeftModel

    say("loading_adapter", f"attaching the LoRA adapter from {adapter.parent.name}/{adapter.name}")
    return PeftModel.from_pretrained(model, str(adapter))


def _has_tokenizer(directory: Path) -> bool:
    return (directory / "tokenizer_config.json").is_file() or (directory / "tokenizer.json").is_file()
