"""Tokenization with loss masking, and the batch collator.

Only the assistant's answers are learned: every other token (system prompt, user turns,
the chat template's role headers) gets the label -100, which the loss ignores. Two
layouts, chosen by the tokenizer:

* **chat template** (instruct models): the conversation is rendered by the template;
  every assistant turn's content and the end-of-turn token that follows it are trained,
  so the model learns both what to answer and when to stop.
* **plain** (base models without a template): ``prompt + "\\n" + completion + EOS``,
  the workshop's format; only ``completion + EOS`` is trained.

The text is tokenized piece by piece at the boundaries between masked and trained
text, so the prompt part of a training example is exactly the token sequence that
:func:`prompt_token_ids` feeds the model at generation time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cockpit.data.records import Example
from cockpit.errors import CockpitError

IGNORE_INDEX = -100


@dataclass
class TokenizedExample:
    """Token ids and their labels (-100 where no loss is taken)."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False
    """True when the example was cut to ``max_length`` (from the end)."""

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_trainable(self) -> int:
        """How many tokens carry a loss."""
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


def has_chat_template(tokenizer: Any) -> bool:
    """Whether the tokenizer carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def _use_template(tokenizer: Any, use_chat_template: bool | None) -> bool:
    if use_chat_template is None:
        return has_chat_template(tokenizer)
    if use_chat_template and not has_chat_template(tokenizer):
        raise CockpitError("this tokenizer has no chat template",
                           "train in the plain prompt/completion format instead")
    return use_chat_template


def plain_prompt_text(prompt_messages: Sequence[Mapping[str, str]]) -> str:
    """The plain (template-free) prompt: every message's content on its own line(s), then a newline."""
    return "\n".join(m["content"] for m in prompt_messages) + "\n"


def _encode(tokenizer: Any, text: str, special: bool = False) -> list[int]:
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def _render(tokenizer: Any, messages: Sequence[Mapping[str, str]], gen_prompt: bool) -> str:
    try:
        return tokenizer.apply_chat_template(list(messages), tokenize=False,
                                             add_generation_prompt=gen_prompt)
    except Exception as exc:  # jinja raises its own errors (e.g. "roles must alternate")
        raise CockpitError(f"the tokenizer's chat template rejected a conversation: {exc}",
                           "check the roles of the example, or train without the chat template"
                           ) from exc


def prompt_token_ids(tokenizer: Any, prompt_messages: Sequence[Mapping[str, str]], *,
                     use_chat_template: bool | None = None) -> list[int]:
    """The token ids generation feeds the model for ``prompt_messages``.

    With a chat template: the rendered conversation plus the generation prompt (the
    assistant's header). Without: the plain ``prompt\\n`` format, with the tokenizer's
    BOS token when it adds one.
    """
    if _use_template(tokenizer, use_chat_template):
        return _encode(tokenizer, _render(tokenizer, prompt_messages, gen_prompt=True))
    return _encode(tokenizer, plain_prompt_text(prompt_messages), special=True)


def text_prompt_ids(tokenizer: Any, text: str) -> list[int]:
    """The start of a plain-text document as generation continues it (the tokenizer's BOS
    where it adds one, no chat template): how a model trained on plain text saw documents."""
    return _encode(tokenizer, text, special=True)


def _special_ids(tokenizer: Any) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _template_pieces(tokenizer: Any, messages: list[dict]) -> list[tuple[str, str]]:
    """Cut the rendered conversation into ``(text, mode)`` pieces.

    mode: ``mask`` (no loss), ``train`` (assistant content) or ``eot`` (the text after
    an assistant turn: its first token is trained when it is a special token such as
    ``<|im_end|>`` or ``<|eot_id|>``, the rest is masked).
    """
    full = _render(tokenizer, messages, gen_prompt=False)
    pieces: list[tuple[str, str]] = []
    cursor = 0
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant" or msg.get("train") is False:
            continue  # context: part of the masked text around the learned turns
        before = _render(tokenizer, messages[:i], gen_prompt=True) if i else ""
        # Where the assistant's content starts: right after the generation prompt when
        # the template renders prefixes consistently, else the next occurrence.
        search_from = len(before) if full.startswith(before) and len(before) >= cursor else cursor
        content = msg["content"]
        start = full.find(content, search_from)
        if start < 0:
            content = content.strip()
            start = full.find(content, search_from)
        if start < 0 or not content:
            raise CockpitError("the tokenizer's chat template does not reproduce the assistant's "
                               "text verbatim, so the answer cannot be located for masking",
                               "train without the chat template (plain prompt/completion format)")
        end = start + len(content)
        # The end-of-turn marker is what the template renders after the content when the
        # conversation stops at this turn; fall back to the rest of the line.
        through = _render(tokenizer, messages[:i + 1], gen_prompt=False)
        if full.startswith(through) and len(through) >= end:
            stop = len(through)
        else:
            nxt = full.find("\n", end)
            stop = len(full) if nxt < 0 else nxt + 1
        pieces += [(full[cursor:start], "mask"), (full[start:end], "train"),
                   (full[end:stop], "eot")]
        cursor = stop
    pieces.append((full[cursor:], "mask"))
    return [(text, mode) for text, mode in pieces if text]


def encode_text(text: str, tokenizer: Any) -> TokenizedExample:
    """A plain-text document (continued pretraining): BOS where the tokenizer adds one,
    the text, EOS; every token is learned."""
    ids = _encode(tokenizer, text, special=True)
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None:
        ids.append(eos)
    return TokenizedExample(ids, list(ids))


def encode_example(example: Example, tokenizer: Any, *,
                   use_chat_template: bool | None = None) -> TokenizedExample:
    """The whole example as token ids and labels, without truncation."""
    if example.text is not None:
        return encode_text(example.text, tokenizer)
    ids: list[int] = []
    labels: list[int] = []
    if _use_template(tokenizer, use_chat_template):
        special = _special_ids(tokenizer)
        for text, mode in _template_pieces(tokenizer, example.messages):
            piece = _encode(tokenizer, text)
            ids += piece
            if mode == "train":
                labels += piece
            elif mode == "eot" and piece and piece[0] in special:
                labels += [piece[0]] + [IGNORE_INDEX] * (len(piece) - 1)
            else:
                labels += [IGNORE_INDEX] * len(piece)
        return TokenizedExample(ids, labels)
    prompt = prompt_token_ids(tokenizer, example.prompt_messages, use_chat_template=False)
    answer = _encode(tokenizer, example.completion)
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None:
        answer.append(eos)
    return TokenizedExample(prompt + answer, [IGNORE_INDEX] * len(prompt) + answer)


def tokenize_example(example: Example, tokenizer: Any, max_length: int | None, *,
                     use_chat_template: bool | None = None) -> TokenizedExample | None:
    """Token ids and labels for training, cut from the end to ``max_length``.

    Returns None when nothing trainable remains (the prompt alone fills ``max_length``):
    such an example cannot teach anything and would only cost compute.
    """
    tok = encode_example(example, tokenizer, use_chat_template=use_chat_template)
    if max_length is not None and len(tok) > max_length:
        tok = TokenizedExample(tok.input_ids[:max_length], tok.labels[:max_length], truncated=True)
    if tok.num_trainable == 0:
        return None
    return tok


def pack_documents(docs, max_length: int):
    """Concatenate tokenized documents and cut them into rows of ``max_length`` tokens
    (the last, shorter row included): continued pretraining wastes nothing on padding.
    ``docs`` yields token-id lists; yields ``(input_ids, labels)`` with every token learned."""
    buf: list[int] = []
    for ids in docs:
        buf.extend(ids)
        while len(buf) >= max_length:
            row, buf = buf[:max_length], buf[max_length:]
            yield row, list(row)
    if buf:
        yield buf, list(buf)


def learned_segments(tok: TokenizedExample, tokenizer: Any, limit: int | None = None) -> list[tuple[str, bool]]:
    """The example as the model sees it: decoded runs of tokens, each marked learned or not.

    Special tokens are kept (``<|im_start|>``...), so this is the exact text after the chat
    template. ``limit`` caps the number of tokens shown.
    """
    ids = tok.input_ids if limit is None else tok.input_ids[:limit]
    out: list[tuple[str, bool]] = []
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or (tok.labels[i] != IGNORE_INDEX) != (tok.labels[start] != IGNORE_INDEX):
            text = tokenizer.decode(ids[start:i], skip_special_tokens=False)
            out.append((text, tok.labels[start] != IGNORE_INDEX))
            start = i
    return out


def plain_marked(segments: list[tuple[str, bool]]) -> str:
    """Segments as plain text, the learned ones in ``[[...]]``."""
    return "".join(f"[[{text}]]" if learned else text for text, learned in segments)


def _field(feature: Any, name: str) -> list[int]:
    if isinstance(feature, Mapping):
        return list(feature[name])
    return list(getattr(feature, name))


class DataCollator:
    """Turn a list of tokenized examples into a batch of tensors.

    Padding is dynamic: to the longest example of the batch (rounded up to
    ``pad_to_multiple_of``), never to ``max_length``, so short batches cost little.
    Labels are padded with -100 and an ``attention_mask`` marks the real tokens.

    With ``packing=True`` the batch is flattened into one row with ``position_ids``
    restarting at 0 for every example and no attention mask; transformers recognises
    the restarts and keeps the examples from attending to each other (SDPA, eager and
    FlashAttention alike), so no compute is spent on padding. A packed batch also
    carries ``use_cache=False``, which that detection needs (see below).
    """

    def __init__(self, tokenizer: Any, packing: bool = False, pad_to_multiple_of: int | None = None):
        self.packing = packing
        self.pad_to_multiple_of = pad_to_multiple_of
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(tokenizer, "eos_token_id", None)
        self.pad_token_id = 0 if pad is None else int(pad)

    def _round_up(self, n: int) -> int:
        m = self.pad_to_multiple_of
        return n if not m else -(-n // m) * m

    def __call__(self, features: Sequence[Any]) -> dict[str, Any]:
        import torch

        if not features:
            raise ValueError("DataCollator got an empty batch")
        seqs = [(_field(f, "input_ids"), _field(f, "labels")) for f in features]
        if self.packing:
            ids: list[int] = []
            labels: list[int] = []
            positions: list[int] = []
            for seq_ids, seq_labels in seqs:
                ids += seq_ids
                # The first token of an example has no predecessor inside its own example;
                # without this its label would be predicted from the previous example's end.
                labels += [IGNORE_INDEX] + seq_labels[1:]
                positions += range(len(seq_ids))
            extra = self._round_up(len(ids)) - len(ids)
            ids += [self.pad_token_id] * extra
            labels += [IGNORE_INDEX] * extra
            positions += range(extra)  # the padding forms its own segment, seen by no example
            return {"input_ids": torch.tensor([ids], dtype=torch.long),
                    "labels": torch.tensor([labels], dtype=torch.long),
                    "position_ids": torch.tensor([positions], dtype=torch.long),
                    # transformers only looks for packed sequences when no KV cache is in
                    # play, and models whose config says use_cache=True build one even in
                    # training mode: the examples would then silently attend to each other.
                    "use_cache": False}
        width = self._round_up(max(len(s[0]) for s in seqs))
        input_ids = torch.full((len(seqs), width), self.pad_token_id, dtype=torch.long)
        labels_t = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, (seq_ids, seq_labels) in enumerate(seqs):
            n = len(seq_ids)
            input_ids[row, :n] = torch.tensor(seq_ids, dtype=torch.long)
            labels_t[row, :n] = torch.tensor(seq_labels, dtype=torch.long)
            mask[row, :n] = 1
        return {"input_ids": input_ids, "labels": labels_t, "attention_mask": mask}
