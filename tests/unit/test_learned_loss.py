"""The loss only where it is learned equals transformers' own loss, and so do its gradients:
for every method (full, lora, int8, qlora), padded and packed, with chunks smaller than
the batch, and through the Trainer with gradient accumulation."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from cockpit.data.records import Example  # noqa: E402
from cockpit.training.learned_loss import IGNORE_INDEX, LearnedLoss, chunk_rows, linear_cross_entropy_sum  # noqa: E402
from cockpit.training.recipe import load_model, pick_precision  # noqa: E402
from cockpit.data.tokenize import DataCollator, tokenize_example  # noqa: E402

CONVERSATIONS = [
    [("user", "What is 2+2?"), ("assistant", "4")],
    [("system", "Be kind."), ("user", "Name a colour."), ("assistant", "Blue, like the sky at noon.")],
    [("user", "Hi"), ("assistant", "Hello! How can I help you today?"), ("user", "Tell me a joke."),
     ("assistant", "Why did the valve open? It was under pressure.")],
    [("user", "Count to five."), ("assistant", "one two three four five")],
]


def _features(tokenizer):
    return [tokenize_example(Example(messages=[{"role": r, "content": c} for r, c in conv]), tokenizer, 256)
            for conv in CONVERSATIONS]


def _hf_loss_and_grads(model, batch, num_items=None):
    model.zero_grad(set_to_none=True)
    kwargs = {"num_items_in_batch": num_items} if num_items is not None else {}
    loss = model(**batch, **kwargs).loss
    loss.backward()
    return loss.detach(), _grads(model)


def _learned_loss_and_grads(model, batch, chunk, num_items=None):
    model.zero_grad(set_to_none=True)
    learned = LearnedLoss(model, chunk=chunk)
    try:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with learned.capturing():
            outputs = model(**inputs)
        assert outputs.logits.shape[-2] == 0  # no logits were computed for the whole batch
        loss = learned(outputs, batch["labels"], num_items_in_batch=num_items)
        loss.backward()
    finally:
        learned.remove()
    return loss.detach(), _grads(model)


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def _assert_same(a, b, rtol=1e-4, atol=1e-6):
    (loss_a, grads_a), (loss_b, grads_b) = a, b
    assert torch.allclose(loss_a, loss_b, rtol=rtol, atol=atol), (loss_a, loss_b)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], rtol=rtol, atol=atol * 10), name


@pytest.mark.parametrize("method", ["full", "lora", "int8", "qlora"])
@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
def test_equals_transformers_loss_and_gradients(method, packing, tiny_config, tiny_model_dir, bundled_tokenizer):
    if method in ("int8", "qlora"):
        pytest.importorskip("bitsandbytes")
    cfg = tiny_config(method=method, lora_dropout=0.0)
    torch.manual_seed(0)
    model = load_model(cfg, tiny_model_dir, pick_precision(cfg))
    model.train()
    batch = DataCollator(bundled_tokenizer, packing=packing)(_features(bundled_tokenizer))
    learned = int((batch["labels"][..., 1:] != IGNORE_INDEX).sum())
    reference = _hf_loss_and_grads(model, batch)
    # chunks of 5 rows: several chunks and a ragged last one
    _assert_same(reference, _learned_loss_and_grads(model, batch, chunk=5))
    # the Trainer's token-count normalization: sum / num_items_in_batch, as transformers does
    doubled = torch.tensor(2 * learned)
    _assert_same(_hf_loss_and_grads(model, batch, doubled), _learned_loss_and_grads(model, batch, 64, doubled))


def test_hook_only_acts_inside_capturing(tiny_model_dir, bundled_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    batch = DataCollator(bundled_tokenizer)(_features(bundled_tokenizer))
    learned = LearnedLoss(model, chunk=8)
    with torch.no_grad():
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        assert full.shape[-1] == model.config.vocab_size and full.shape[1] == batch["input_ids"].shape[1]
        with learned.capturing():
            empty = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        assert empty.shape[1] == 0
        # loss without gradients (evaluation) equals transformers' too
        ours = learned(None, batch["labels"])
        theirs = model(**batch).loss
    assert torch.allclose(ours, theirs, rtol=1e-5)
    learned.remove()
    with pytest.raises(RuntimeError, match="output layer was not reached"):
        learned(None, batch["labels"])


def test_linear_cross_entropy_with_bias_and_half_precision():
    torch.manual_seed(1)
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        h = torch.randn(37, 16, dtype=dtype, requires_grad=True)
        w = torch.randn(50, 16, dtype=dtype, requires_grad=True)
        b = torch.randn(50, dtype=dtype, requires_grad=True)
        y = torch.randint(0, 50, (37,))
        ref = torch.nn.functional.cross_entropy(torch.nn.functional.linear(h, w, b).float(), y, reduction="sum")
        ref_grads = torch.autograd.grad(ref, (h, w, b))
        ours = linear_cross_entropy_sum(h, w, b, y, chunk=8)
        grads = torch.autograd.grad(ours * 3.0, (h, w, b))  # the incoming gradient scales them
        assert torch.allclose(ours, ref, rtol=tol)
        for g, r in zip(grads, ref_grads):
            assert g.dtype == r.dtype
            assert torch.allclose(g.float(), 3.0 * r.float(), rtol=tol, atol=tol * 10)


def test_no_learned_token_gives_a_zero_loss_with_a_gradient():
    h = torch.randn(0, 8, requires_grad=True)
    w = torch.randn(10, 8, requires_grad=True)
    loss = linear_cross_entropy_sum(h, w, None, torch.zeros(0, dtype=torch.long), chunk=4)
    loss.backward()
    assert loss.item() == 0.0 and w.grad is None or float(w.grad.abs().sum()) == 0.0


def test_chunk_rows_follow_the_memory_budget():
    assert chunk_rows(49152, "cpu") == 64 * 2**20 // (4 * 49152)
    assert chunk_rows(49152, "cuda") > chunk_rows(49152, "cpu")
    assert chunk_rows(128256, "cuda", free_bytes=64 * 2**20) == 16  # nearly full GPU: the minimum
    assert chunk_rows(10, "cpu") > 1000


@pytest.mark.parametrize("learned", [False, True], ids=["hf_loss", "learned_loss"])
def test_packed_sdpa_equals_sdpa_with_the_packed_mask(learned, tiny_model_dir, bundled_tokenizer):
    """Per-example SDPA over a packed row: the same loss and gradients as transformers' SDPA
    with its block-diagonal mask (and as padding), on a model with grouped-query attention."""
    from transformers import AutoModelForCausalLM

    from cockpit.training.packed_attention import NAME, register, segment_bounds

    register()
    feats = _features(bundled_tokenizer)
    packed = DataCollator(bundled_tokenizer, packing=True, pad_to_multiple_of=8)(feats)
    results = []
    for attn in ("sdpa", NAME):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attn)
        assert model.config.num_key_value_heads < model.config.num_attention_heads or attn == "sdpa"
        model.train()
        results.append(_learned_loss_and_grads(model, packed, 7) if learned else _hf_loss_and_grads(model, packed))
    _assert_same(results[0], results[1], rtol=1e-5)
    assert segment_bounds(packed["position_ids"])[:2] == [0, len(feats[0].input_ids)]
    assert segment_bounds(torch.arange(10).unsqueeze(0)) is None  # one sequence: plain SDPA


def test_packed_sdpa_leaves_padded_batches_and_generation_to_sdpa(tiny_model_dir, bundled_tokenizer):
    from transformers import AutoModelForCausalLM

    from cockpit.training.packed_attention import NAME, register

    register()
    batch = DataCollator(bundled_tokenizer)(_features(bundled_tokenizer))
    ours = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=NAME).eval()
    theirs = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    with torch.no_grad():
        assert torch.allclose(ours(**batch).loss, theirs(**batch).loss, rtol=1e-6)
        prompt = batch["input_ids"][:1, :6]
        a = ours.generate(prompt, max_new_tokens=5, do_sample=False)
        b = theirs.generate(prompt, max_new_tokens=5, do_sample=False)
    assert a.tolist() == b.tolist()


@pytest.mark.parametrize("packing", ["false", "true"])
def test_training_runs_match_transformers_loss_with_gradient_accumulation(packing, tiny_config):
    """Whole runs through the Trainer, 2 micro-batches per step: the same loss and gradient
    norm at every step with the learned-position loss as with transformers' own."""
    from cockpit.run import events as ev
    from cockpit.run.launch import prepare_run
    from cockpit.training.trainer import TrainingRun

    steps = {}
    for learned in (False, True):
        cfg = tiny_config(learned_loss=learned, packing=packing, grad_accum=2, batch_size=2, max_steps=3,
                          save_steps=100)
        sink = ev.ListSink()
        assert TrainingRun(prepare_run(cfg), sink=sink).execute() == "finished"
        steps[learned] = [(e.loss, e.grad_norm) for e in sink.of_type(ev.Step)]
        info = [e.message for e in sink.of_type(ev.Warning) if e.kind == "info"][0]
        assert ("loss on learned positions only" in info) == learned
    assert len(steps[True]) == 3
    for (loss_a, grad_a), (loss_b, grad_b) in zip(steps[False], steps[True]):
        assert loss_b == pytest.approx(loss_a, rel=1e-4) and grad_b == pytest.approx(grad_a, rel=1e-3)
