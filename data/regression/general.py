"""The questions of the ``cockpit_general`` lm-eval task, read from ``general.jsonl`` beside
this file (so the task does not depend on the current working directory)."""

from __future__ import annotations

import json
from pathlib import Path

ITEMS = Path(__file__).resolve().parent / "general.jsonl"


def load(**_metadata):
    """lm-eval's ``custom_dataset`` hook: the questions as a one-split ``DatasetDict``.

    lm-eval passes the task's metadata (``version``, ...) as keyword arguments; none is needed.
    """
    import datasets

    rows = [json.loads(line) for line in ITEMS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
