"""Small helpers the end-to-end tests share."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float = 120.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail the test naming ``what`` after ``timeout`` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")
