"""Variant 2, the same recipe with dynamic padding: each batch padded to its longest example.

``python -m tests.bench.recipe_dynamic --model DIR --output-dir OUT --result R.json``
"""

from __future__ import annotations

import sys

from tests.bench.recipe_common import run_recipe

if __name__ == "__main__":
    sys.exit(run_recipe("longest"))
