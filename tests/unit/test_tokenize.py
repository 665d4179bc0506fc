"""Tokenization, loss masking and batching (cockpit/data/tokenize.py) on the bundled tokenizer."""

from __future__ import annotations

import copy

import pytest
import torch

from cockpit.data import Example
from cockpit.errors import CockpitError
from cockpit.data.tokenize import (
    IGNORE_INDEX,
    DataCollator,
    TokenizedExample,
    encode_example,
    prompt_token_ids,
    tokenize_example,
)


def ex(*pairs, line: int = 1) -> Example:
    return Example([{"role": r, "content": c} for r, c in pairs], line=line)


def trained(tok: TokenizedExample) -> list[int]:
    return [t for t, lab in zip(tok.input_ids, tok.labels) if lab != IGNORE_INDEX]


def test_labels_equal_inputs_where_trained(bundled_tokenizer):
    tok = tokenize_example(ex(("user", "What is 2+2?"), ("assistant", "4")), bundled_tokenizer, 512)
    assert len(tok.input_ids) == len(tok.labels)
    assert all(lab in (IGNORE_INDEX, t) for t, lab in zip(tok.input_ids, tok.labels))
    assert not tok.truncated


def test_chat_template_trains_answer_and_end_of_turn_only(bundled_tokenizer):
    t = bundled_tokenizer
    example = ex(("system", "Be brief."), ("user", "What is 2+2?"), ("assistant", "It is 4."))
    tok = tokenize_example(example, t, 512)
    assert t.decode(trained(tok)) == "It is 4.<|im_end|>"
    # The masked prefix is exactly what generation feeds the model.
    prompt = prompt_token_ids(t, example.prompt_messages)
    assert tok.input_ids[:len(prompt)] == prompt
    assert set(tok.labels[:len(prompt)]) == {IGNORE_INDEX}
    assert t.decode(tok.input_ids) == t.apply_chat_template(example.messages, tokenize=False)


def test_every_assistant_turn_is_trained(bundled_tokenizer):
    t = bundled_tokenizer
    tok = encode_example(ex(("user", "hi"), ("assistant", "hello there"), ("user", "bye?"),
                            ("assistant", "goodbye")), t)
    assert t.decode(trained(tok)) == "hello there<|im_end|>goodbye<|im_end|>"
    assert "bye?" not in t.decode(trained(tok))


def test_plain_format_is_prompt_newline_completion_eos(bundled_tokenizer):
    t = bundled_tokenizer
    example = ex(("user", "What is 2+2?"), ("assistant", "4"))
    tok = encode_example(example, t, use_chat_template=False)
    assert t.decode(tok.input_ids) == "What is 2+2?\n4" + t.eos_token
    assert trained(tok) == t("4", add_special_tokens=False)["input_ids"] + [t.eos_token_id]
    prompt = prompt_token_ids(t, example.prompt_messages, use_chat_template=False)
    assert tok.input_ids[:len(prompt)] == prompt and t.decode(prompt) == "What is 2+2?\n"


def test_plain_format_is_used_when_there_is_no_template(bundled_tokenizer):
    t = copy.deepcopy(bundled_tokenizer)
    t.chat_template = None
    tok = encode_example(ex(("user", "q"), ("assistant", "a")), t)
    assert t.decode(tok.input_ids) == "q\na" + t.eos_token
    with pytest.raises(CockpitError, match="no chat template"):
        encode_example(ex(("user", "q"), ("assistant", "a")), t, use_chat_template=True)


def test_template_without_newlines_still_finds_the_end_of_turn(bundled_tokenizer):
    t = copy.deepcopy(bundled_tokenizer)
    t.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}: {{ m['content'] }}<|im_end|>"
                       "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant: {% endif %}")
    tok = encode_example(ex(("user", "one"), ("assistant", "two"), ("user", "three"),
                            ("assistant", "four")), t)
    assert t.decode(trained(tok)) == "two<|im_end|>four<|im_end|>"


def test_template_that_rejects_a_conversation_is_a_cockpit_error(bundled_tokenizer):
    t = copy.deepcopy(bundled_tokenizer)
    t.chat_template = "{{ raise_exception('roles must alternate') }}"
    with pytest.raises(CockpitError, match="roles must alternate"):
        encode_example(ex(("user", "q"), ("assistant", "a")), t)


def test_truncation_from_the_end_and_dropping(bundled_tokenizer):
    t = bundled_tokenizer
    example = ex(("user", "Say many words."), ("assistant", "word " * 200))
    full = encode_example(example, t)
    prompt_len = len(prompt_token_ids(t, example.prompt_messages))
    cut = tokenize_example(example, t, prompt_len + 5)
    assert cut.truncated and len(cut) == prompt_len + 5 and cut.num_trainable == 5
    assert cut.input_ids == full.input_ids[:prompt_len + 5]
    assert tokenize_example(example, t, prompt_len) is None  # the prompt alone fills it
    assert tokenize_example(example, t, len(full)).truncated is False


def test_collator_pads_dynamically(bundled_tokenizer):
    feats = [TokenizedExample([5, 6, 7], [IGNORE_INDEX, 6, 7]), {"input_ids": [8], "labels": [8]}]
    batch = DataCollator(bundled_tokenizer)(feats)
    pad = bundled_tokenizer.pad_token_id
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, pad, pad]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert DataCollator(bundled_tokenizer, pad_to_multiple_of=8)(feats)["input_ids"].shape == (2, 8)


def test_collator_packing_makes_one_row_with_restarting_positions(bundled_tokenizer):
    feats = [TokenizedExample([5, 6, 7], [5, 6, 7]), TokenizedExample([8, 9], [IGNORE_INDEX, 9])]
    batch = DataCollator(bundled_tokenizer, packing=True)(feats)
    assert set(batch) == {"input_ids", "labels", "position_ids", "use_cache"}
    assert batch["use_cache"] is False
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7, IGNORE_INDEX, 9]]
    padded = DataCollator(bundled_tokenizer, packing=True, pad_to_multiple_of=4)(feats)
    assert padded["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2]]
    assert padded["labels"][0, 5:].tolist() == [IGNORE_INDEX] * 3


@pytest.fixture(scope="module")
def tiny_llama(bundled_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(bundled_tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512)
    config._attn_implementation = "sdpa"
    return LlamaForCausalLM(config).eval()


def _separate_loss(model, feats) -> torch.Tensor:
    """Mean over all trained tokens of all examples, each run on its own (the reference)."""
    total, count = torch.tensor(0.0), 0
    for f in feats:
        ids = torch.tensor([f.input_ids])
        labels = torch.tensor(f.labels[1:])
        logits = model(input_ids=ids).logits[0, :-1]
        total = total + torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX,
                                                          reduction="sum")
        count += int((labels != IGNORE_INDEX).sum())
    return total / count


def test_packed_and_padded_losses_equal_separate_runs(bundled_tokenizer, tiny_llama):
    t = bundled_tokenizer
    feats = [tokenize_example(ex(("user", "What is 2+2?"), ("assistant", "4")), t, 512),
             tokenize_example(ex(("system", "Be kind."), ("user", "Name a colour."),
                                 ("assistant", "Blue, like the sky at noon.")), t, 512),
             tokenize_example(ex(("user", "Hi"), ("assistant", "Hello! How can I help you today?")), t, 512)]
    assert tiny_llama.config.use_cache  # like most models; packing must work regardless
    with torch.no_grad():
        reference = _separate_loss(tiny_llama, feats)
        packed = tiny_llama(**DataCollator(t, packing=True)(feats)).loss
        padded = tiny_llama(**DataCollator(t)(feats)).loss
        # Control: the same row without position restarts lets examples see each other.
        flat = DataCollator(t, packing=True)(feats)
        leaky = tiny_llama(input_ids=flat["input_ids"], labels=flat["labels"], use_cache=False).loss
        tiny_llama.train()  # what the Trainer runs in (dropout is 0 in this config)
        try:
            packed_train = tiny_llama(**DataCollator(t, packing=True)(feats)).loss
        finally:
            tiny_llama.eval()
    assert torch.allclose(packed_train, reference, atol=1e-5), (packed_train, reference)
    assert torch.allclose(packed, reference, atol=1e-5), (packed, reference)
    assert torch.allclose(padded, reference, atol=1e-5), (padded, reference)
    assert not torch.allclose(leaky, reference, atol=1e-4)
