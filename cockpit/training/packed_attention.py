"""Attention for packed rows that costs what the examples cost, not what the row costs.

A packed batch is one row of several examples whose ``position_ids`` restart at 0 at each
example (``cockpit.data.tokenize.DataCollator``). transformers keeps the examples apart with a
block-diagonal causal mask over the whole row, and PyTorch's SDPA kernels then compute
attention for every pair of positions in the row and mask most of it away: for four
examples of ~110 tokens, a 450 x 450 score matrix where four 110 x 110 blocks matter. On
a GPU, FlashAttention 2's variable-length kernel avoids that (transformers uses it when it
sees packed position ids); this module does the same with plain SDPA for every other
device: one causal SDPA call per example of the row (the fast ``is_causal`` kernel, no mask
at all), outputs concatenated. The result is the same attention, example by example.

Everything else (batches with padding, generation with a KV cache, a row holding one
sequence) goes to transformers' own SDPA function unchanged. Registered under
:data:`NAME` in transformers' ``AttentionInterface`` (and its mask interface, which keeps
SDPA's masks), so a model loaded with ``attn_implementation=NAME`` uses it.
"""

from __future__ import annotations

NAME = "cockpit_packed_sdpa"


def segment_bounds(position_ids) -> list[int] | None:
    """``[0, b1, b2, ..., S]``: where the examples of one packed row start, from the
    restarts of its position ids; None for a row that holds a single sequence."""
    starts = (position_ids[0] == 0).nonzero().flatten().tolist()
    if len(starts) < 2 or starts[0] != 0:
        return None
    return [*starts, int(position_ids.shape[-1])]


_last_bounds: list = [None, None]  # (position_ids, its bounds): every layer of a forward pass shares them


def _bounds(position_ids) -> list[int] | None:
    """:func:`segment_bounds`, once per forward pass (on a GPU each call waits for the device)."""
    if _last_bounds[0] is not position_ids:
        _last_bounds[:] = [position_ids, segment_bounds(position_ids)]
    return _last_bounds[1]


def packed_sdpa_attention(module, query, key, value, attention_mask, dropout: float = 0.0,
                          scaling: float | None = None, **kwargs):
    """transformers' attention-function signature: ``query`` [b, heads, s, d], ``key`` and
    ``value`` [b, kv_heads, s, d]; returns ([b, s, heads, d], None)."""
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward, use_gqa_in_sdpa

    position_ids = kwargs.get("position_ids")
    bounds = None
    if (position_ids is not None and query.shape[0] == 1 and query.shape[2] == key.shape[2] > 1
            and position_ids.shape[-1] == query.shape[2]):
        bounds = _bounds(position_ids)
    if bounds is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    extra = {}
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        if use_gqa_in_sdpa(None, key, value):
            extra["enable_gqa"] = True
        else:
            key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    outputs = [torch.nn.functional.scaled_dot_product_attention(
        query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], dropout_p=dropout, scale=scaling, is_causal=b - a > 1,
        **extra) for a, b in zip(bounds, bounds[1:])]
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


def register() -> str:
    """Make :data:`NAME` a valid ``attn_implementation`` (idempotent); returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, packed_sdpa_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME
