"""The answerers behind each side of a chat: a transformers model (adapters on or off) and a
GGUF in llama.cpp. Each turns a conversation into a stream of text chunks.

A transformers side builds its prompt exactly as training did
(:func:`cockpit.data.tokenize.prompt_token_ids`: the chat template with the generation prompt)
and runs ``model.generate`` in a thread with a ``TextIteratorStreamer``, so text arrives
as it is generated. Temperature 0 is greedy decoding with the same arguments as
:func:`cockpit.models.generate.generate` (the samples and eval path), so the base side of a LoRA
run answers exactly what :func:`cockpit.models.generate.adapters_off` generation answers.

A GGUF side uses llama-cpp-python's chat completion, which renders the chat template
stored in the GGUF (the export writes the model's own), streamed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Sampling:
    """How an answer is drawn: temperature 0 means greedy (the default, as eval and samples)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256


class HFAnswerer:
    """A transformers model; ``adapters=False`` answers with a PEFT model's adapters disabled."""

    kind = "transformers"

    def __init__(self, model: Any, tokenizer: Any, *, adapters: bool = True, context: int = 2048) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.adapters = adapters
        self.context = context
        self.last_prompt_ids: list[int] = []
        self.trimmed_turns = 0

    def prompt_ids(self, messages: Sequence[dict], max_new_tokens: int) -> list[int]:
        """The prompt for ``messages`` (template + generation prompt); the oldest turns are
        left out while it does not fit the context with room for the answer."""
        from cockpit.data.tokenize import prompt_token_ids

        messages = list(messages)
        self.trimmed_turns = 0
        room = max(16, self.context - max_new_tokens)
        ids = prompt_token_ids(self.tokenizer, messages)
        while len(ids) > room and _drop_oldest_turn(messages):
            self.trimmed_turns += 1
            ids = prompt_token_ids(self.tokenizer, messages)
        return ids[-room:]

    def stream(self, messages: Sequence[dict], sampling: Sampling, cancel: threading.Event) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        from cockpit.models.generate import _stop_ids, adapters_off

        abandoned = threading.Event()  # the reader went away (the generator was closed)

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                stop = cancel.is_set() or abandoned.is_set()
                return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

        ids = self.prompt_ids(messages, sampling.max_new_tokens)
        self.last_prompt_ids = ids
        device = next(self.model.parameters()).device
        input_ids = torch.tensor([ids], device=device)
        eos = _stop_ids(self.tokenizer, self.model)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs: dict[str, Any] = dict(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=sampling.max_new_tokens,
            num_beams=1, eos_token_id=eos, use_cache=True, streamer=streamer,
            pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos[0],
            stopping_criteria=StoppingCriteriaList([_Cancelled()]),
        )
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False)
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                with adapters_off(self.model) if not self.adapters else contextlib.nullcontext():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread below
                failure.append(exc)
                streamer.end()  # unblock the reader

        worker = threading.Thread(target=generate, name="chat-generate", daemon=True)
        self.model.eval()
        worker.start()
        try:
            for text in streamer:
                if text:
                    yield text
        except GeneratorExit:
            abandoned.set()
            worker.join()
            raise
        worker.join()
        if failure:
            raise failure[0]

    def close(self) -> None:
        self.model = None


class GGUFAnswerer:
    """A GGUF file in llama.cpp (llama-cpp-python), answering through its chat completion."""

    kind = "llama.cpp"

    def __init__(self, path: Path, *, context: int = 2048) -> None:
        from llama_cpp import Llama

        self.path = Path(path)
        self.context = context
        self.trimmed_turns = 0
        self.llm = Llama(model_path=str(self.path), n_ctx=context, verbose=False, seed=0)

    def stream(self, messages: Sequence[dict], sampling: Sampling, cancel: threading.Event) -> Iterator[str]:
        messages = list(messages)
        self.trimmed_turns = 0
        while True:
            try:
                chunks = self.llm.create_chat_completion(
                    messages=messages, stream=True, max_tokens=sampling.max_new_tokens,
                    temperature=max(0.0, sampling.temperature), top_p=sampling.top_p, top_k=0, min_p=0.0,
                    repeat_penalty=1.0, seed=0)
                first = next(chunks, None)
                break
            except ValueError as exc:  # "Requested tokens exceed context window"
                if "context" not in str(exc) or not _drop_oldest_turn(messages):
                    raise
                self.trimmed_turns += 1
        if first is None:
            return
        for chunk in _chain(first, chunks):
            if cancel.is_set():
                chunks.close()
                return
            choices = chunk.get("choices") or [{}]
            text = (choices[0].get("delta") or {}).get("content")
            if text:
                yield text

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None:
            with contextlib.suppress(Exception):  # llama-cpp-python's own teardown can trip at exit
                llm.close()


def _chain(first, rest):
    yield first
    yield from rest


def _drop_oldest_turn(messages: list[dict]) -> bool:
    """Remove the oldest user/assistant exchange (the system prompt and the last message stay)."""
    start = 1 if messages and messages[0].get("role") == "system" else 0
    if len(messages) - start <= 1:
        return False
    del messages[start]
    if len(messages) - start > 1 and messages[start].get("role") == "assistant":
        del messages[start]
    return True
