"""The loss only where it is learned: the output layer and the cross-entropy at the learned
positions, a chunk at a time.

transformers' causal-LM loss runs the output layer over every position of the batch
(``[batch, seq, vocab]`` logits, upcast to fp32), then throws away every position whose
next token has the label -100: the prompt, the chat template's headers, the padding. On
the demo data that is half the tokens, and the vocabulary is wide (49,152 for SmolLM2,
128,256 for Llama 3): the logits are the largest tensor of a small model's step.

Here the model runs as usual up to its output layer. A forward pre-hook on that layer
(:meth:`LearnedLoss.capturing`) keeps the hidden states it is given and hands it an empty
slice instead, so the model returns empty logits and everything before the head (the final
norm, the family's own code) is still transformers'. The loss function (the Trainer's
``compute_loss_func``) then picks the positions whose next-token label is learned and
applies the output layer and the cross-entropy to those only, ``chunk`` rows at a time, in
:func:`linear_cross_entropy_sum`: each chunk's gradient is computed in the forward pass
and its fp32 logits are freed at once, so no full-vocabulary tensor larger than one chunk
ever exists (the idea of Liger's fused linear cross-entropy and of Apple's Cut Cross-
Entropy, written for the CPU and any device without their kernels).

The result equals transformers' loss: the same sum of token losses, divided by the same
``num_items_in_batch`` (the learned tokens of the whole accumulated batch, counted by the
Trainer), so gradient accumulation keeps its token-count normalization.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

IGNORE_INDEX = -100
MIB = 2**20
# The most memory one chunk's fp32 logits may take. On a GPU a bigger chunk is a bigger,
# faster matmul; on a CPU beyond a few hundred rows nothing is gained. The estimator
# (cockpit/planning/memory.py) counts exactly this bound.
CHUNK_BUDGET_BYTES = {"cpu": 64 * MIB, "cuda": 512 * MIB}
MIN_CHUNK_ROWS = 16


def chunk_rows(vocab: int, device: str, free_bytes: int | None = None) -> int:
    """Rows per chunk: one chunk's fp32 logits within the device's budget, and within an
    eighth of the free memory when that is known (a nearly full GPU gets smaller chunks)."""
    budget = CHUNK_BUDGET_BYTES.get(device, CHUNK_BUDGET_BYTES["cpu"])
    if free_bytes:
        budget = min(budget, free_bytes // 8)
    return max(MIN_CHUNK_ROWS, budget // (4 * max(1, vocab)))


def linear_cross_entropy_sum(hidden, weight, bias, targets, chunk: int):
    """``sum_i CE(hidden[i] @ weight.T + bias, targets[i])`` without ever holding more than
    ``chunk`` rows of logits; differentiable in ``hidden``, ``weight`` and ``bias``."""
    import torch

    if hidden.shape[0] == 0:
        # No learned token in this batch: a zero that still connects to the graph.
        return (hidden.sum() * 0.0).float()
    want_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad
                                             or (bias is not None and bias.requires_grad))
    return _autograd_function().apply(hidden, weight, bias, targets, int(chunk), want_grad)


def _chunked_forward(hidden, weight, bias, targets, chunk: int, want_grad: bool):
    import torch
    import torch.nn.functional as F

    n = hidden.shape[0]
    need_h = want_grad and hidden.requires_grad
    need_w = want_grad and weight.requires_grad
    need_b = want_grad and bias is not None and bias.requires_grad
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    grad_h = torch.empty_like(hidden) if need_h else None
    grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
    grad_b = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if need_b else None
    for start in range(0, n, chunk):
        h = hidden[start:start + chunk]
        y = targets[start:start + chunk]
        logits = F.linear(h, weight, bias).float()  # the head in the model's dtype, the loss in fp32
        # log-sum-exp and softmax in the logits' own storage: no second chunk-sized buffer
        logits.sub_(logits.amax(dim=-1, keepdim=True))
        picked = logits.gather(1, y.unsqueeze(1)).squeeze(1)
        sums = logits.exp_().sum(dim=-1)
        total += (sums.log() - picked).sum()
        if not (need_h or need_w or need_b):
            continue
        # d(sum of CE)/d(logits) = softmax - one_hot(target)
        grad_logits = logits.div_(sums.unsqueeze(1))
        grad_logits[torch.arange(h.shape[0], device=h.device), y] -= 1.0
        g = grad_logits.to(weight.dtype) if weight.dtype != torch.float32 else grad_logits
        if need_h:
            grad_h[start:start + chunk] = g @ weight
        if need_w:
            grad_w.addmm_(grad_logits.t(), h.float())
        if need_b:
            grad_b += grad_logits.sum(0)
        del logits, grad_logits, g
    return total, grad_h, grad_w, grad_b


@functools.cache
def _autograd_function():
    """Built on first use, so that importing this module (the estimator does) needs no torch."""
    import torch

    class ChunkedLinearCrossEntropy(torch.autograd.Function):
        """The forward pass computes the loss and, chunk by chunk, its gradients; the
        backward pass only scales them by the incoming gradient (a scalar)."""

        @staticmethod
        def forward(ctx, hidden, weight, bias, targets, chunk, want_grad):  # noqa: D102
            total, *grads = _chunked_forward(hidden, weight, bias, targets, chunk, want_grad)
            # intermediate results, not inputs: kept on ctx (no reference cycle through the graph)
            ctx.grads = grads
            ctx.dtypes = (hidden.dtype, weight.dtype, bias.dtype if bias is not None else None)
            return total

        @staticmethod
        def backward(ctx, grad_out):  # noqa: D102
            scaled = tuple(None if g is None else (g * grad_out).to(dtype) for g, dtype in zip(ctx.grads, ctx.dtypes))
            ctx.grads = None
            return (*scaled, None, None, None)

    return ChunkedLinearCrossEntropy


class LearnedLoss:
    """The Trainer's ``compute_loss_func`` and the hook that feeds it.

    ``with loss.capturing(): outputs = model(**inputs)`` runs the model with its output layer
    skipped; ``loss(outputs, labels, num_items_in_batch)`` then returns the mean token loss
    over the learned positions, as transformers' ``ForCausalLMLoss`` would.
    """

    @staticmethod
    def unsupported(model: Any) -> str | None:
        """Why the model's output layer cannot be applied by hand, or None when it can: it
        must be a plain linear layer (not quantized, not wrapped by an adapter)."""
        import torch

        head = model.get_output_embeddings()
        if head is None:
            return "the model has no output layer to skip"
        if type(head) is not torch.nn.Linear:
            return f"its output layer is a {type(head).__name__}, not a plain linear layer"
        return None

    def __init__(self, model: Any, chunk: int) -> None:
        self.head = model.get_output_embeddings()
        self.chunk = int(chunk)
        self._hidden = None
        self._active = False
        self._handle = self.head.register_forward_pre_hook(self._pre_hook)

    def _pre_hook(self, module, args):
        if not self._active:
            return None  # generation and anything else outside a loss computation: untouched
        hidden = args[0]
        self._hidden = hidden
        return (hidden[..., :0, :], *args[1:])

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        self._active, self._hidden = True, None
        try:
            yield
        finally:
            self._active = False

    def __call__(self, outputs: Any, labels: Any, num_items_in_batch: Any = None):
        hidden, self._hidden = self._hidden, None
        if hidden is None:
            raise RuntimeError("the model's output layer was not reached: the learned-position loss has no "
                               "hidden states (set learned_loss=false for this model)")
        if labels is None:
            raise RuntimeError("the learned-position loss needs labels")
        labels = labels.to(hidden.device)
        shift = labels[..., 1:]
        learned = shift != IGNORE_INDEX
        selected = hidden[..., :-1, :][learned]
        targets = shift[learned]
        total = linear_cross_entropy_sum(selected, self.head.weight, self.head.bias, targets, self.chunk)
        if num_items_in_batch is None:
            return total / max(1, targets.numel())
        if hasattr(num_items_in_batch, "to"):
            num_items_in_batch = num_items_in_batch.to(total.device)
        return total / num_items_in_batch

    def remove(self) -> None:
        self._handle.remove()


def free_device_memory(device: str) -> int | None:
    """Free bytes on the training device, when it can say (CUDA); the CPU keeps its budget."""
    if device != "cuda":
        return None
    import torch

    try:
        return int(torch.cuda.mem_get_info()[0])
    except Exception:  # noqa: BLE001 - no free-memory figure: the budget alone decides
        return None


def trainer_class():
    """transformers' Trainer whose loss computation runs the model with the output layer
    skipped (``LearnedLoss.capturing``), for training and evaluation alike; the loss itself
    is the ``compute_loss_func`` the Trainer is given, so its gradient-accumulation and
    token-count handling stay transformers' own."""
    from transformers import Trainer

    class LearnedLossTrainer(Trainer):
        def __init__(self, *args, learned_loss: LearnedLoss, **kwargs):
            super().__init__(*args, compute_loss_func=learned_loss, **kwargs)
            self.learned_loss = learned_loss

        def compute_loss(self, model, inputs, *args, **kwargs):
            with self.learned_loss.capturing():
                return super().compute_loss(model, inputs, *args, **kwargs)

    return LearnedLossTrainer
