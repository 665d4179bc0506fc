"""Export a finished run: merge, GGUF, Modelfile, Ollama, Hugging Face Hub, and proof it runs.

The one entry point is :func:`export_run` (the CLI's ``llm-cockpit export`` and the TUI's
export screen both call it); the steps live in their own modules:

* :mod:`cockpit.export.source`    reading the run directory
* :mod:`cockpit.export.merge`     RAM/disk preflight and the LoRA merge
* :mod:`cockpit.export.doctor`    checks before converting
* :mod:`cockpit.export.convert`   llama.cpp's converter and quantizer
* :mod:`cockpit.export.modelfile` Ollama Modelfile and chat-template translation
* :mod:`cockpit.export.ollama`    ``ollama create`` or the HTTP API
* :mod:`cockpit.export.verify`    llama.cpp and transformers checks of the GGUF
* :mod:`cockpit.export.hub`       model card and upload
* :mod:`cockpit.export.runtime`   llama.cpp's runtime: needed or not, installed on request
* :mod:`cockpit.export.exportlog` the libraries' output, kept in ``RUN/export/export.log``

Importing this package is cheap: torch, transformers and peft load inside the steps.
"""

from __future__ import annotations

from cockpit.export.pipeline import QUANTS, TARGETS, ExportProgress, ExportResult, export_run

__all__ = ["QUANTS", "TARGETS", "ExportProgress", "ExportResult", "export_run"]
