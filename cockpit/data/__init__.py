"""Training data: every common format and source, checked record by record, tokenized once.

* ``sources``  what the user named: a file, a directory or glob, a saved dataset, ``hf:ORG/NAME``;
* ``readers``  records out of JSONL, JSON arrays, CSV/TSV (streaming, ``file:line``) and, through
  ``datasets``, Parquet, saved and hub datasets (``file:row N``);
* ``formats``  each record's format detected and normalized (prompt/completion, messages,
  Alpaca, ShareGPT, plain text), with the column mapping;
* ``loading``  sources -> examples with every problem located; the leak-free split;
* ``report``   what ``llm-cockpit data check`` says (learned tokens marked);
* ``prepare``  the tokenized train/eval datasets for a run, cached on disk by fingerprint;
* ``convert``  any accepted source as normalized JSONL; ``chatgpt``: a ChatGPT export.

Nothing here imports torch, transformers or datasets at import time.
"""

from __future__ import annotations

from typing import Any

from cockpit.data.columns import parse_columns
from cockpit.data.formats import DATA_FORMATS, FORMATS, parse_record
from cockpit.data.loading import (DataOptions, LoadResult, load_examples, load_examples_strict, split_examples,
                                  split_indices)
from cockpit.data.readers import MAX_LINE_BYTES, plural
from cockpit.data.records import ROLES, Example, Problem, RecordError, clean_text

__all__ = ["DATA_FORMATS", "FORMATS", "MAX_LINE_BYTES", "ROLES", "DataOptions", "DataReport", "Example",
           "LoadResult", "Problem", "RecordError", "build_report", "clean_text", "load_examples",
           "load_examples_strict", "parse_columns", "parse_record", "plural", "split_examples", "split_indices"]


def __getattr__(name: str) -> Any:
    # The report needs the tokenizer code, which builds on the records: resolved lazily.
    if name in ("DataReport", "build_report"):
        from cockpit.data import report

        return getattr(report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
