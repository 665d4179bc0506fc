"""Greedy generation: the one code path used for training samples, evaluation and the demo.

The prompt is built exactly as in training (``cockpit.data.tokenize.prompt_token_ids``: the
model's chat template with the generation prompt, or the plain ``prompt\\n`` format), so
what the samples panel shows is what the trained model learned to continue.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


def generate(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int = 64,
             system_prompt: str | None = None, raw: bool = False) -> list[str]:
    """Greedy answers to ``prompts`` (one at a time: no padding, so results never depend
    on which prompts share a batch). The model's train/eval mode is restored after.

    ``raw``: continue each prompt as plain text (a model trained on plain text), without
    the chat template."""
    return [text for text, _ in generate_with_ids(model, tokenizer, prompts, max_new_tokens, system_prompt, raw)]


def generate_with_ids(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int = 64,
                      system_prompt: str | None = None, raw: bool = False) -> list[tuple[str, list[int]]]:
    """Like :func:`generate`, also returning the generated token ids (for exact comparisons)."""
    import torch

    from cockpit.data.tokenize import prompt_token_ids, text_prompt_ids

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    eos = _stop_ids(tokenizer, model)
    out: list[tuple[str, list[int]]] = []
    try:
        with torch.no_grad():
            for prompt in prompts:
                if raw:
                    prompt_ids = text_prompt_ids(tokenizer, prompt)
                else:
                    messages = [{"role": "user", "content": prompt}]
                    if system_prompt:
                        messages.insert(0, {"role": "system", "content": system_prompt})
                    prompt_ids = prompt_token_ids(tokenizer, messages)
                ids = torch.tensor([prompt_ids], device=device)
                generated = model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    eos_token_id=eos,
                    pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0],
                    use_cache=True,
                )
                new = [int(t) for t in generated[0, ids.shape[1]:].tolist()]
                while new and new[-1] in eos:
                    new.pop()
                out.append((tokenizer.decode(new, skip_special_tokens=True).strip(), new))
    finally:
        if was_training:
            model.train()
    return out


@contextlib.contextmanager
def adapters_off(model: Any) -> Iterator[None]:
    """Within it, a PEFT model answers as its base model alone (``disable_adapter`` bypasses
    every LoRA layer); any other model is left as it is."""
    disable = getattr(model, "disable_adapter", None)
    if disable is None:
        yield
        return
    with disable():
        yield


def _stop_ids(tokenizer: Any, model: Any) -> list[int]:
    """End-of-turn tokens: the tokenizer's EOS and the generation config's (may be several)."""
    ids: list[int] = []
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, gen_eos):
        if isinstance(value, int):
            ids.append(value)
        elif isinstance(value, (list, tuple)):
            ids.extend(int(v) for v in value)
    return list(dict.fromkeys(ids)) or [0]
