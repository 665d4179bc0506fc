"""Variant 1, the workshop recipe: every example padded to max_length 512.

``python -m tests.bench.recipe_padded --model DIR --output-dir OUT --result R.json``
"""

from __future__ import annotations

import sys

from tests.bench.recipe_common import run_recipe

if __name__ == "__main__":
    sys.exit(run_recipe("max_length"))
