"""The export's log: where the libraries' chatter goes instead of the terminal.

An export runs transformers, peft, llama.cpp's converter and llama.cpp itself, and each of
them talks: progress bars, deprecation warnings, a bitsandbytes notice, and llama.cpp's
model-loader dump (one line per metadata key and tensor), which its C code writes straight to
file descriptor 2, past Python's ``sys.stderr``. The person exporting wants one line per
stage; the chatter is worth keeping for the day something goes wrong. :class:`ExportLog`
sends it to ``RUN/export/export.log`` for the duration of an export:

* Python level, for the whole export: ``sys.stdout`` / ``sys.stderr`` (print, tqdm bars,
  warnings), the root logger's handlers and transformers' own handler;
* C level, only around llama.cpp's calls (:meth:`ExportLog.native`): file descriptors 1 and 2.

The export's progress callable writes wherever its caller pointed it before the export began
(the CLI keeps the terminal's stream), and it is never called inside :meth:`ExportLog.native`.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

LOG_FILE = "export.log"


class ExportLog:
    """A context manager; ``path`` None keeps the chatter from the terminal and writes no file
    (a dry run writes nothing). ``echo`` leaves the terminal as it is and only adds the file
    (``--debug``: the person asked to see everything)."""

    def __init__(self, path: Path | None, *, echo: bool = False, title: str = "") -> None:
        self.path = path
        self.echo = echo
        self.title = title
        self.stream: TextIO | None = None
        self._saved: dict[str, object] = {}
        self._handler: logging.Handler | None = None

    def __enter__(self) -> ExportLog:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # A log, not a result: written as the export goes, so a failed export leaves its story.
            self.stream = open(self.path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed in __exit__
            self.stream.write(f"# llm-cockpit export {self.title} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        else:
            self.stream = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - closed in __exit__
        self._handler = logging.StreamHandler(self.stream)
        self._handler.setLevel(logging.DEBUG)
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root = logging.getLogger()
        cockpit = logging.getLogger("cockpit")
        self._saved.update(root_handlers=root.handlers[:], cockpit_level=cockpit.level)
        cockpit.setLevel(logging.DEBUG)  # the stage timeline and the converter's lines, in the file
        if self.echo:
            root.addHandler(self._handler)
            return self
        root.handlers = [self._handler]
        self._quiet_transformers()
        self._saved.update(stdout=sys.stdout, stderr=sys.stderr)
        sys.stdout = sys.stderr = self.stream
        return self

    def _quiet_transformers(self) -> None:
        try:
            from transformers.utils import logging as hf_logging
        except Exception:  # noqa: BLE001 - no transformers: nothing of it to quiet
            return
        # Its library logger writes to its own stderr handler and does not propagate.
        self._saved["hf"] = (hf_logging, hf_logging.is_progress_bar_enabled(), logging.getLogger("transformers").propagate)
        hf_logging.disable_default_handler()
        hf_logging.enable_propagation()
        hf_logging.disable_progress_bar()

    def __exit__(self, *exc_info) -> None:
        root = logging.getLogger()
        root.handlers = self._saved["root_handlers"]  # type: ignore[assignment]
        logging.getLogger("cockpit").setLevel(self._saved["cockpit_level"])  # type: ignore[arg-type]
        if "stdout" in self._saved:
            sys.stdout, sys.stderr = self._saved["stdout"], self._saved["stderr"]  # type: ignore[assignment]
        if "hf" in self._saved:
            hf_logging, bars, propagate = self._saved["hf"]  # type: ignore[misc]
            hf_logging.enable_default_handler()
            logging.getLogger("transformers").propagate = propagate
            if bars:
                hf_logging.enable_progress_bar()
        if self.stream is not None:
            self.stream.close()
        self._saved.clear()

    @contextlib.contextmanager
    def native(self) -> Iterator[None]:
        """File descriptors 1 and 2 into the log while the block runs (C code writes there)."""
        if self.echo or self.stream is None:
            yield
            return
        _flush_all()
        try:
            saved = (os.dup(1), os.dup(2))
        except OSError:  # no such descriptors (a daemon): nothing reaches a terminal anyway
            yield
            return
        try:
            os.dup2(self.stream.fileno(), 1)
            os.dup2(self.stream.fileno(), 2)
            yield
        finally:
            _flush_all()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _flush_all() -> None:
    """Python's buffers and C's stdio buffers, so each line lands on the side it was written."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass
