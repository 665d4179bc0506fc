"""Fixtures shared by the engine's unit tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bundled_tokenizer():
    """The bundled SmolLM2 tokenizer (chat template included), loaded once per session.

    Tests must not modify it; copy it (``copy.deepcopy``) to change the chat template.
    """
    from transformers import AutoTokenizer

    from cockpit.models.sources import bundled_tokenizer_dir

    return AutoTokenizer.from_pretrained(str(bundled_tokenizer_dir()))
