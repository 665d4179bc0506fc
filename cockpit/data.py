"""Training data: loading, validation and cleaning of JSONL examples.

Two line formats are accepted, and may be mixed in one file::

    {"prompt": "What is 2+2?", "completion": "4", "system": "optional"}
    {"messages": [{"role": "system", "content": "..."},
                  {"role": "user", "content": "..."},
                  {"role": "assistant", "content": "..."}]}

Every other key of a line is kept in :attr:`Example.meta` (for example ``must_include``
or ``task`` used by evaluation). Both formats are normalized to a list of messages whose
last one is the assistant's answer, so the tokenizer code deals with one shape only.

A broken line never stops loading: it becomes a :class:`Problem` naming ``file:line``,
and the rest of the file is still read, so ``llm-cockpit data check`` can list every
problem at once. Only failures of the whole file (missing, a directory, empty, binary)
raise :class:`~cockpit.errors.CockpitError`.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.data_records import ROLES, Example, RecordError, clean_text, parse_record
from cockpit.errors import CockpitError

__all__ = ["MAX_LINE_BYTES", "ROLES", "Example", "LoadResult", "Problem", "RecordError", "clean_text",
           "load_examples", "load_examples_strict", "parse_record", "split_examples"]

# Even a 128k-token context holds only about 0.5 MB of text, so a line over this limit
# would be almost entirely truncated away; refusing it also keeps memory bounded when a
# file without newlines (a dump, a binary) is passed by mistake.
MAX_LINE_BYTES = 2 * 1024 * 1024

_SNIFF_BYTES = 8192
_EMPTY_ADVICE = 'add one JSON object per line, e.g. {"prompt": "...", "completion": "..."}'


@dataclass
class Problem:
    """One thing wrong with the data, located at ``path:line`` (``line`` None: the file)."""

    path: str
    line: int | None
    message: str
    kind: str = "invalid"
    """A short category for counting: encoding, json, type, keys, role, structure, empty, too_large."""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.message, "kind": self.kind}


@dataclass
class LoadResult:
    """What :func:`load_examples` found: the good examples and every problem."""

    examples: list[Example]
    problems: list[Problem]
    format: str
    """``prompt_completion``, ``messages``, ``mixed``, or ``none`` when no example loaded."""
    path: str = ""
    lines: int = 0
    """Lines read, blank ones included."""
    blank_lines: int = 0
    notes: list[str] = field(default_factory=list)
    """Things accepted but worth knowing (a byte-order mark, CRLF line ends, blank lines)."""


# ---------------------------------------------------------------- file reading


def _check_file(path: Path) -> None:
    """Raise a one-line CockpitError for a file that cannot be JSONL at all."""
    if not path.exists():
        raise CockpitError(f"data file {path} does not exist",
                           "check the path (a JSONL file, one example per line)")
    if path.is_dir():
        raise CockpitError(f"{path} is a directory, not a data file",
                           "pass the JSONL file inside it, e.g. data=DIR/train.jsonl")
    if not os.access(path, os.R_OK):
        raise CockpitError(f"data file {path} is not readable", "fix its permissions")
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise CockpitError(f"cannot read data file {path}: {exc.strerror}",
                           "check the path and its permissions") from exc
    if not head.strip() and len(head) < _SNIFF_BYTES:
        what = "is empty" if not head else "is empty (only blank lines)"
        raise CockpitError(f"data file {path} {what}", _EMPTY_ADVICE)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CockpitError(f"data file {path} is UTF-16 encoded", "save it as UTF-8 (no BOM needed)")
    if head.startswith((b"\x1f\x8b", b"PK\x03\x04")):
        kind = "gzip" if head.startswith(b"\x1f\x8b") else "zip"
        advice = "decompress it and pass the .jsonl file"
        if kind == "zip":
            advice += " (a ChatGPT export: llm-cockpit data convert-chatgpt EXPORT.zip OUT.jsonl)"
        raise CockpitError(f"data file {path} is a {kind} archive, not JSONL", advice)
    if b"\x00" in head:
        raise CockpitError(f"data file {path} is binary, not JSONL text",
                           "pass a UTF-8 text file with one JSON object per line")
    if head.lstrip().startswith(b"["):
        _reject_json_array(path)


def _reject_json_array(path: Path) -> None:
    """A whole-file JSON array is a common mistake; say so instead of one error per line."""
    if path.stat().st_size > 32 * MAX_LINE_BYTES:  # too big to parse whole just for a hint
        return
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return
    if not isinstance(data, list):
        return
    if data and isinstance(data[0], dict) and "mapping" in data[0]:
        advice = f"it looks like a ChatGPT export: llm-cockpit data convert-chatgpt {path} OUT.jsonl"
    else:
        advice = "write one JSON object per line (JSON Lines), not a JSON array"
    raise CockpitError(f"data file {path} is one JSON array, not JSON Lines", advice)


def _iter_lines(fh) -> Iterator[tuple[int, bytes | None, int]]:
    """Yield ``(line_no, raw_bytes, size)``; raw is None for a line over MAX_LINE_BYTES.

    ``readline`` with a limit keeps memory bounded however long a line is.
    """
    line_no = 0
    while True:
        chunk = fh.readline(MAX_LINE_BYTES + 1)
        if not chunk:
            return
        line_no += 1
        if len(chunk) <= MAX_LINE_BYTES or chunk.endswith(b"\n"):
            yield line_no, chunk, len(chunk)
            continue
        size = len(chunk)
        while chunk and not chunk.endswith(b"\n"):
            chunk = fh.readline(1024 * 1024)
            size += len(chunk)
        yield line_no, None, size


# ---------------------------------------------------------------- loading


def load_examples(path: str | os.PathLike[str], *, clean: bool = True,
                  system_prompt: str | None = None) -> LoadResult:
    """Read a JSONL data file; every bad line becomes a :class:`Problem`, loading goes on.

    ``clean`` applies :func:`clean_text` to every message; ``system_prompt`` is added as
    the system message of every example that has none. Raises CockpitError only for
    failures of the whole file: missing, a directory, unreadable, empty, binary, a JSON
    array, or not text at all.
    """
    path = Path(path)
    _check_file(path)
    shown = str(path)
    result = LoadResult(examples=[], problems=[], format="none", path=shown)
    bom_lines: list[int] = []
    crlf = bad_utf8 = 0
    with path.open("rb") as fh:
        for line_no, raw, size in _iter_lines(fh):
            result.lines = line_no
            if raw is None:
                result.problems.append(Problem(
                    shown, line_no, f"line is {size / 1e6:.1f} MB, over the "
                    f"{MAX_LINE_BYTES // (1024 * 1024)} MB limit for one example "
                    "(split long documents into several examples)", "too_large"))
                continue
            if raw.endswith(b"\r\n"):
                crlf += 1
            if raw.startswith(b"\xef\xbb\xbf"):
                bom_lines.append(line_no)
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad_utf8 += 1
                result.problems.append(Problem(
                    shown, line_no, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte "
                    f"{exc.start + 1}); save the file as UTF-8", "encoding"))
                continue
            if not text.strip():
                result.blank_lines += 1
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                result.problems.append(Problem(
                    shown, line_no, f"invalid JSON: {exc.msg} (column {exc.colno})", "json"))
                continue
            except RecursionError:
                result.problems.append(Problem(shown, line_no, "invalid JSON: nested too deeply",
                                               "json"))
                continue
            try:
                result.examples.append(parse_record(obj, clean=clean, system_prompt=system_prompt,
                                                    line=line_no))
            except RecordError as exc:
                result.problems.append(Problem(shown, line_no, str(exc), exc.kind))
    if not result.examples and result.lines and bad_utf8 * 2 > result.lines - result.blank_lines:
        raise CockpitError(f"data file {path} is not UTF-8 text ({bad_utf8} of {result.lines} "
                           "lines are not valid UTF-8)",
                           "pass a UTF-8 text file with one JSON object per line")
    if result.lines == result.blank_lines:
        raise CockpitError(f"data file {path} is empty (only blank lines)", _EMPTY_ADVICE)
    formats = {ex.format for ex in result.examples}
    result.format = formats.pop() if len(formats) == 1 else ("mixed" if formats else "none")
    if bom_lines:
        where = "at the start of the file" if bom_lines == [1] else f"on lines {_short(bom_lines)}"
        result.notes.append(f"byte-order mark {where} (accepted and ignored)")
    if crlf:
        result.notes.append(f"{plural(crlf, 'line')} end{'s' if crlf == 1 else ''} with CRLF "
                            "(Windows line ends; accepted)")
    if result.blank_lines:
        result.notes.append(f"{plural(result.blank_lines, 'blank line')} skipped")
    return result


def plural(n: int, noun: str) -> str:
    """``1 line``, ``2 lines``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _short(numbers: list[int], limit: int = 10) -> str:
    head = ", ".join(map(str, numbers[:limit]))
    return head + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


def load_examples_strict(path: str | os.PathLike[str], **kw: Any) -> list[Example]:
    """Like :func:`load_examples`, but any problem is an error (what training uses).

    The CockpitError names the first problem as ``file:line`` and how many more there are.
    """
    result = load_examples(path, **kw)
    if result.problems:
        more = len(result.problems) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise CockpitError(f"{result.problems[0]}{tail}",
                           f"fix the data; llm-cockpit data check {path} lists every problem")
    if not result.examples:
        raise CockpitError(f"data file {path} has no examples", "add one JSON object per line")
    return result.examples


def split_examples(examples: list[Example], eval_split: float,
                   seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out ``eval_split`` of the examples for evaluation, deterministically.

    The same seed gives the same split. Identical examples (same prompt and completion)
    always land on the same side, so the eval set never contains a copy of a training
    example (no leakage). With ``eval_split > 0`` and at least two distinct examples, at
    least one example is held out and at least one is kept for training. Both lists keep
    the file order.
    """
    if not 0 <= eval_split < 1:
        raise CockpitError(f"eval_split={eval_split} is out of range", "use 0 <= eval_split < 1")
    groups: dict[tuple, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex.key(), []).append(i)
    keys = list(groups)
    if eval_split == 0 or len(keys) < 2:
        return list(examples), []
    random.Random(seed).shuffle(keys)
    target = max(1, round(len(examples) * eval_split))
    held: set[int] = set()
    held_groups = 0
    for key in keys:
        if len(held) >= target or held_groups == len(keys) - 1:
            break
        if len(held) + len(groups[key]) <= target:
            held.update(groups[key])
            held_groups += 1
    if not held:  # every group of copies is bigger than the target: hold out the smallest
        held.update(min((groups[k] for k in keys), key=len))
    train = [ex for i, ex in enumerate(examples) if i not in held]
    evals = [ex for i, ex in enumerate(examples) if i in held]
    return train, evals


def __getattr__(name: str) -> Any:
    # The report (cockpit/data_report.py) builds on this module; it is importable from
    # here too, resolved lazily so that importing either module first works.
    if name in ("DataReport", "build_report"):
        from cockpit import data_report

        return getattr(data_report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
