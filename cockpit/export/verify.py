"""Proof that the exported GGUF runs and says what the trained model says.

1. **llama.cpp** (through ``llama-cpp-python``) loads the GGUF and answers the run's probe
   prompts with greedy decoding, fed the very token ids the Hugging Face model gets; the
   generated tokens are compared with the HF model's greedy tokens. llama.cpp's own
   tokenizer also encodes each prompt's text, to show the GGUF's tokenizer (pre-tokenizer
   included) matches the original.
2. **transformers' GGUF loader** reads the GGUF back (dequantized) and its logits over the
   same prompts are compared with the HF model's: max abs difference, top-1 agreement.

Greedy answers of an f16 export normally match token for token. Quantized exports (q8_0
and below) change the numbers slightly: where the model hesitates between two tokens, the
answers part ways and never meet again, so the report also gives the next-token agreement
along the HF answers (llama.cpp fed the HF answer so far), which one early tie cannot hide.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ContextManager

from cockpit.errors import exception_line
from cockpit.export import runtime
from cockpit.export.modelfile import END_OF_TURN, detect_family

log = logging.getLogger(__name__)

LLAMA_CPP_PIN = runtime.LLAMA_CPP_PIN
Say = Callable[[str, float | None], None]
Quiet = Callable[[], ContextManager[Any]]


@dataclass
class PromptResult:
    """One probe prompt: both runtimes' greedy tokens and how far they agree."""

    prompt: str
    hf_tokens: list[int]
    llama_tokens: list[int]
    hf_text: str
    llama_text: str
    common_prefix: int
    tokenizer_match: bool
    forced_matches: int = 0  # HF answer tokens llama.cpp also ranks first, given the HF answer so far

    @property
    def identical(self) -> bool:
        return self.hf_tokens == self.llama_tokens


@dataclass
class VerifyReport:
    """The outcome of both checks (``None`` fields: that check did not run; see ``notes``)."""

    prompts: list[PromptResult] = field(default_factory=list)
    llama_cpp: str = "not run"  # ok | skipped | failed | not run
    identical: int = 0
    token_agreement: float | None = None
    forced_agreement: float | None = None
    tokenizer_matches: int = 0
    gguf_logits_max_abs_diff: float | None = None
    gguf_top1_agreement: float | None = None
    gguf_positions: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["total"] = len(self.prompts)
        for p, d in zip(self.prompts, data["prompts"]):
            d["identical"] = p.identical
        return data

    def summary(self) -> str:
        """One line for the CLI and the TUI."""
        parts = []
        if self.llama_cpp == "ok":
            parts.append(f"llama.cpp greedy answers identical to the HF model on {self.identical}/{len(self.prompts)} "
                         f"probe prompts (token agreement {self.token_agreement:.1%}, next-token agreement along "
                         f"the HF answers {self.forced_agreement:.1%}; tokenizer identical on "
                         f"{self.tokenizer_matches}/{len(self.prompts)})")
        elif self.llama_cpp == "skipped":
            parts.append("llama.cpp check skipped (llama-cpp-python is not installed: export again with "
                         "--install-runtime)")
        else:
            parts.append(f"llama.cpp check {self.llama_cpp}")
        if self.gguf_top1_agreement is not None:
            parts.append(f"transformers GGUF reload: top-1 agreement {self.gguf_top1_agreement:.1%} over "
                         f"{self.gguf_positions} positions, max |logit diff| {self.gguf_logits_max_abs_diff:.4f}")
        return "; ".join(parts)


def stop_token_ids(tokenizer, generation_eos: list[int] | None = None) -> list[int]:
    """EOS, the generation config's EOS ids and the template family's end-of-turn tokens."""
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    ids.extend(int(t) for t in generation_eos or [])
    vocab = tokenizer.get_vocab()
    for tok in END_OF_TURN.get(detect_family(getattr(tokenizer, "chat_template", None)) or "", []):
        if tok in vocab:
            ids.append(int(vocab[tok]))
    return list(dict.fromkeys(ids))


def prompt_inputs(tokenizer, prompt: str, system_prompt: str | None) -> tuple[list[int], str, bool]:
    """(token ids, the text they encode, whether special tokens are added when encoding it):
    the same prompt layout training used (cockpit.data.tokenize.prompt_token_ids)."""
    from cockpit.data.tokenize import has_chat_template, plain_prompt_text, prompt_token_ids

    messages = [{"role": "user", "content": prompt}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    ids = prompt_token_ids(tokenizer, messages)
    if has_chat_template(tokenizer):
        return ids, tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), False
    return ids, plain_prompt_text(messages), True


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _strip_stops(tokens: list[int], stops: set[int]) -> list[int]:
    out = []
    for t in tokens:
        if t in stops:
            break
        out.append(t)
    return out


def hf_greedy(model, ids: list[int], stops: list[int], max_new_tokens: int, pad_id: int | None) -> list[int]:
    """The HF model's greedy answer tokens to ``ids`` (stop tokens removed)."""
    import torch

    with torch.no_grad():
        x = torch.tensor([ids])
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens,
                             do_sample=False, num_beams=1, eos_token_id=stops,
                             pad_token_id=pad_id if pad_id is not None else stops[0])
    return _strip_stops([int(t) for t in out[0, len(ids):].tolist()], set(stops))


def llama_cpp_available() -> str | None:
    """None when llama_cpp imports, else why not (:func:`cockpit.export.runtime.library_missing`)."""
    return runtime.library_missing()


def _llama_greedy(llm, ids: list[int], stops: set[int], max_new_tokens: int) -> list[int]:
    import numpy as np

    llm.reset()
    llm.eval(ids)
    out: list[int] = []
    for _ in range(max_new_tokens):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if tok in stops:
            break
        out.append(tok)
        llm.eval([tok])
    return out


def _forced_matches(llm, ids: list[int], answer: list[int]) -> int:
    """How many of ``answer``'s tokens llama.cpp ranks first when fed the prompt and the
    answer before each one (teacher forcing): agreement that one early tie cannot hide."""
    import numpy as np

    if not answer:
        return 0
    llm.reset()
    llm.eval(ids + answer)
    first = len(ids) - 1
    return sum(int(np.argmax(llm.scores[first + i])) == tok for i, tok in enumerate(answer))


def verify_export(hf_dir: Path, gguf: Path, prompts: list[str], *, system_prompt: str | None = None,
                  max_new_tokens: int = 48, logits_check: bool = True, say: Say | None = None,
                  quiet: Quiet | None = None) -> VerifyReport:
    """Run both checks of ``gguf`` against the HF model in ``hf_dir``.

    ``quiet()`` is entered around the native calls (llama.cpp, the GGUF reload), so an export
    can send what their C code writes to the terminal into its log; ``say`` is never called
    inside it.
    """
    quiet = quiet or contextlib.nullcontext
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say = say or (lambda msg, frac: None)
    report = VerifyReport()
    tok = AutoTokenizer.from_pretrained(str(hf_dir))
    say("loading the merged model (fp32 reference)", 0.05)
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32)
    model.eval()
    gen_eos = model.generation_config.eos_token_id
    gen_eos = [gen_eos] if isinstance(gen_eos, int) else list(gen_eos or [])
    stops = stop_token_ids(tok, gen_eos)
    inputs = [prompt_inputs(tok, p, system_prompt) for p in prompts]
    say("greedy answers of the HF model", 0.15)
    hf_out = [hf_greedy(model, ids, stops, max_new_tokens, tok.pad_token_id) for ids, _, _ in inputs]

    reason = runtime.import_problem()
    if reason is not None:
        log.info("llama.cpp check skipped: %s", reason)
        report.llama_cpp = "skipped"
        report.notes.append(runtime.proof_skipped_note())
    else:
        say("greedy answers of llama.cpp on the GGUF", 0.45)
        with quiet():
            _run_llama_cpp(report, gguf, prompts, inputs, hf_out, stops, max_new_tokens, tok)
    if logits_check:
        say("reloading the GGUF with transformers to compare logits", 0.7)
        with quiet():
            _logits_check(report, model, gguf, [ids for ids, _, _ in inputs])
    say(report.summary(), 1.0)
    return report


def _run_llama_cpp(report: VerifyReport, gguf: Path, prompts: list[str], inputs, hf_out, stops: list[int],
                   max_new_tokens: int, tok) -> None:
    from llama_cpp import Llama

    longest = max((len(ids) for ids, _, _ in inputs), default=0) + max_new_tokens + 8
    try:
        # logits_all: llama-cpp-python keeps logits in .scores only then (n_ctx x vocab floats,
        # which is why n_ctx is sized to the longest prompt plus answer).
        llm = Llama(model_path=str(gguf), n_ctx=longest, n_batch=512, n_threads=os.cpu_count() or 1,
                    verbose=False, seed=0, logits_all=True)
    except Exception as exc:  # noqa: BLE001 - llama.cpp refusing the file is the finding itself
        report.llama_cpp = "failed"
        report.notes.append(f"llama.cpp could not load {gguf.name}: {exc}")
        return
    try:
        for prompt, (ids, text, special), hf_tokens in zip(prompts, inputs, hf_out):
            llama_tokens = _llama_greedy(llm, ids, set(stops), max_new_tokens)
            own_ids = llm.tokenize(text.encode("utf-8"), add_bos=special, special=True)
            forced = _forced_matches(llm, ids, hf_tokens)
            report.prompts.append(PromptResult(
                prompt=prompt, hf_tokens=hf_tokens, llama_tokens=llama_tokens,
                hf_text=tok.decode(hf_tokens, skip_special_tokens=True),
                llama_text=tok.decode(llama_tokens, skip_special_tokens=True),
                common_prefix=_common_prefix(hf_tokens, llama_tokens),
                tokenizer_match=list(own_ids) == list(ids), forced_matches=forced))
    finally:
        llm.close()  # now, not at interpreter exit when the native library may be gone
    report.llama_cpp = "ok"
    report.identical = sum(p.identical for p in report.prompts)
    report.tokenizer_matches = sum(p.tokenizer_match for p in report.prompts)
    longest_each = [max(len(p.hf_tokens), len(p.llama_tokens)) for p in report.prompts]
    total = sum(longest_each)
    report.token_agreement = (sum(p.common_prefix for p in report.prompts) / total) if total else 1.0
    answered = sum(len(p.hf_tokens) for p in report.prompts)
    report.forced_agreement = (sum(p.forced_matches for p in report.prompts) / answered) if answered else 1.0


def _logits_check(report: VerifyReport, model, gguf: Path, prompt_ids: list[list[int]]) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    try:
        # The architecture comes from the HF model's config: parsing it from the GGUF too
        # would read the whole vocabulary a second time (slow in gguf-py) for nothing the
        # llama.cpp check does not already cover.
        back = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, config=model.config,
                                                    dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 - an architecture transformers cannot read back
        report.notes.append(f"transformers could not load the GGUF back ({type(exc).__name__}: "
                            f"{exception_line(exc, 160)})")
        return
    back.eval()
    worst = 0.0
    agree = 0
    positions = 0
    with torch.no_grad():
        for ids in prompt_ids:
            x = torch.tensor([ids])
            a = model(input_ids=x).logits[0]
            b = back(input_ids=x).logits[0]
            worst = max(worst, float((a - b).abs().max()))
            agree += int((a.argmax(-1) == b.argmax(-1)).sum())
            positions += len(ids)
    report.gguf_logits_max_abs_diff = worst
    report.gguf_top1_agreement = agree / positions if positions else None
    report.gguf_positions = positions
