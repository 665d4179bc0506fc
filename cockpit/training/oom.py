"""Out of memory: telling it from other failures, and saying what was asked for against
what the estimate said this config needs."""

from __future__ import annotations

import re
from typing import Any

_UNITS = {"b": 1, "bytes": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "kb": 10**3, "mb": 10**6,
          "gb": 10**9}


def is_oom(exc: BaseException) -> bool:
    """torch's CUDA OutOfMemoryError, and the CPU allocator's "can't allocate memory"."""
    name = type(exc).__name__
    text = str(exc).lower()
    return name in ("OutOfMemoryError", "OutOfMemory") or "out of memory" in text or "can't allocate memory" in text


def requested_bytes(text: str) -> int | None:
    """The size in torch's OOM messages: CUDA "Tried to allocate 2.00 GiB", CPU
    "you tried to allocate 123456 bytes"."""
    m = re.search(r"tried to allocate ([0-9.]+)\s*([a-z]+)", text, re.IGNORECASE)
    if not m:
        return None
    unit = _UNITS.get(m.group(2).lower())
    return int(float(m.group(1)) * unit) if unit else None


def oom_message(exc: BaseException, on_gpu: bool, estimate: dict[str, Any] | None) -> str:
    """``out of memory (GPU); an allocation of 2.00 GiB failed; the estimate ... was 9.1 GiB at peak``."""
    parts = [f"out of memory ({'GPU' if on_gpu else 'host RAM'})"]
    asked = requested_bytes(str(exc))
    if asked:
        parts.append(f"an allocation of {asked / 2**30:.2f} GiB failed")
    if estimate and estimate.get("total_bytes"):
        parts.append(f"the estimate for this config was {estimate['total_bytes'] / 2**30:.2f} GiB at peak")
    return "; ".join(parts)
