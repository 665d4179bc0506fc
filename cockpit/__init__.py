"""llm-cockpit engine: config, data, models, training runs, evaluation and export.

This package never imports textual (the UI lives in ``screens`` and ``widgets``);
a test checks it in a fresh interpreter.
"""

__version__ = "0.1.0"
