"""A JSON array of records, read element by element: never the whole file in memory.

``json.JSONDecoder.raw_decode`` decodes one element at a time from a buffer that grows
only as far as the element needs, and each element's first line is kept, so a problem
names ``file:line`` as in JSON Lines. A syntax error ends the array (nothing after it can
be found again): that is one problem at its line.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cockpit.data.raw import MAX_LINE_BYTES, Record, ReadStats, open_bytes
from cockpit.data.records import Problem
from cockpit.errors import CockpitError


class _ArrayStream:
    """Elements of a top-level JSON array, decoded one at a time from a growing buffer."""

    def __init__(self, fh) -> None:
        self.reader = codecs.getreader("utf-8-sig")(fh)
        self.buf = ""
        self.pos = 0
        self.line = 1  # the line number at self.pos
        self.eof = False
        self.decoder = json.JSONDecoder()

    def _fill(self, at_least: int = 1 << 16) -> bool:
        if self.eof:
            return False
        chunk = self.reader.read(at_least)
        if not chunk:
            self.eof = True
            return False
        if self.pos > 1 << 20:  # drop what was consumed, so memory stays bounded
            self.buf = self.buf[self.pos:]
            self.pos = 0
        self.buf += chunk
        return True

    def _skip_ws(self) -> str:
        """The next non-whitespace character ('' at the end), counting newlines."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                if self.buf[self.pos] == "\n":
                    self.line += 1
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def elements(self) -> Iterator[tuple[int, Any]]:
        if self._skip_ws() != "[":
            raise ValueError("not an array")
        self.pos += 1
        first = True
        while True:
            c = self._skip_ws()
            if c == "]":
                return
            if not first:
                if c != ",":
                    raise json.JSONDecodeError("Expecting ',' delimiter", self.buf, self.pos)
                self.pos += 1
                self._skip_ws()
            first = False
            start_line = self.line
            obj, end = self._decode()
            self.line += self.buf.count("\n", self.pos, end)
            self.pos = end
            yield start_line, obj

    def _decode(self) -> tuple[Any, int]:
        want = 1 << 16
        while True:
            try:
                return self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                if len(self.buf) - self.pos > MAX_LINE_BYTES or not self._fill(want):
                    raise
                want *= 2


def read_json_array(path: Path, stats: ReadStats) -> Iterator[Record | Problem]:
    shown = str(path)
    count = problems = 0
    with open_bytes(path) as fh:
        stream = _ArrayStream(fh)
        try:
            for line, obj in stream.elements():
                if count == 0 and isinstance(obj, dict) and "mapping" in obj:
                    raise CockpitError(f"data file {path} is a ChatGPT export, not training data",
                                       f"it looks like a ChatGPT export: llm-cockpit data convert-chatgpt {path} "
                                       "OUT.jsonl")
                count += 1
                yield Record(obj, shown, line=line)
        except json.JSONDecodeError as exc:
            line = stream.line + stream.buf.count("\n", stream.pos, exc.pos)
            big = len(stream.buf) - stream.pos > MAX_LINE_BYTES
            what = (f"a record over the {MAX_LINE_BYTES // 2**20} MB limit, or invalid JSON" if big
                    else f"invalid JSON: {exc.msg}")
            problems += 1
            yield Problem(shown, line, f"{what}; the rest of the array cannot be read", "json")
        except UnicodeDecodeError as exc:
            raise CockpitError(f"data file {path} is not UTF-8 text ({exc.reason})", "save it as UTF-8") from exc
        except RecursionError:
            problems += 1
            yield Problem(shown, stream.line, "invalid JSON: nested too deeply", "json")
        else:
            stream.pos += 1  # the closing bracket
            if stream._skip_ws():
                problems += 1
                yield Problem(shown, stream.line, "unexpected text after the end of the JSON array", "json")
    if count == 0 and problems == 0:
        raise CockpitError(f"data file {path} is an empty JSON array", "add records to it")
    stats.lines += stream.line
