"""What a cached tokenized dataset is keyed on: the data, the tokenizer, every setting that
changes a row, and the version of the code that makes the rows."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cockpit.data.loading import DataOptions
from cockpit.data.sources import Source, source_fingerprint

# Bump when tokenization, masking or packing change what a cached row holds.
PIPELINE_VERSION = 1


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """What makes a tokenizer cut text the same way: vocabulary and rules, special tokens,
    the chat template (not where it was loaded from)."""
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:  # a slow tokenizer: its vocabulary stands in for the rules
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "add_bos_token", "add_eos_token"):
        h.update(f"{name}={getattr(tokenizer, name, None)}\n".encode())
    h.update(str(getattr(tokenizer, "chat_template", None) or "").encode())
    return h.hexdigest()[:20]


def _options_key(options: DataOptions) -> dict[str, Any]:
    return {"format": options.data_format, "columns": list(options.columns), "split": options.split,
            "subset": options.subset, "system_prompt": options.system_prompt, "clean": options.clean}


def data_fingerprint(cfg: Any, tokenizer: Any, train: Source, evaluation: Source | None) -> str:
    """The cache key of a config's tokenized data."""
    key = {"version": PIPELINE_VERSION, "train": source_fingerprint(train),
           "eval": source_fingerprint(evaluation) if evaluation else None,
           "eval_split": None if evaluation else cfg.eval_split, "seed": cfg.seed, "max_length": cfg.max_length,
           "options": _options_key(DataOptions.from_config(cfg)), "tokenizer": tokenizer_fingerprint(tokenizer),
           "probes": cfg.sample_count}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
