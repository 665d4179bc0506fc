"""Reading records out of a source, one at a time, each with where it came from.

Text files are read by this module, streaming, so that every problem names its
``file:line`` and a bad line never stops the rest of the file from being checked:

* JSON Lines: line by line, each line at most :data:`MAX_LINE_BYTES`;
* a JSON array: element by element (``raw_decode`` over a sliding buffer), never the
  whole file in memory;
* CSV/TSV: Python's ``csv`` module, every value kept as the text it is (pandas would
  turn an answer ``0042`` into 42 and ``NA`` into a missing value).

Columnar data (Parquet, saved and hub datasets) goes through the ``datasets`` library:
``cockpit.data.columnar``. A JSON array is read by ``cockpit.data.json_array``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from cockpit.data.columnar import load_hub, load_parquet, load_saved, read_columnar
from cockpit.data.json_array import read_json_array
from cockpit.data.raw import MAX_LINE_BYTES, ColumnCheck, Record, ReadStats, open_bytes
from cockpit.data.records import Problem
from cockpit.data.sources import Source, file_type
from cockpit.errors import CockpitError

_SNIFF_BYTES = 8192
_EMPTY_ADVICE = 'add one JSON object per line, e.g. {"prompt": "...", "completion": "..."}'


def read_source(source: Source, stats: ReadStats, check: ColumnCheck | None = None) -> Iterator[Record | Problem]:
    """Every record of ``source`` in order, with a :class:`Problem` for each bad one.

    ``check`` looks at the columns of columnar data first: when it finds problems they are
    yielded instead of the rows (a wrong column type would otherwise fail every row alike).
    Raises CockpitError for failures of a whole file or dataset (missing, empty, binary,
    not UTF-8, unreachable hub dataset).
    """
    if source.kind == "files":
        for path in source.files:
            yield from read_file(path, stats, check)
    elif source.kind == "saved":
        yield from read_columnar(load_saved(source), source.label, stats, check)
    else:
        yield from read_columnar(load_hub(source), source.label, stats, check)


def read_file(path: Path, stats: ReadStats, check: ColumnCheck | None = None) -> Iterator[Record | Problem]:
    """The records of one data file, by its type (the name, else the content)."""
    kind = file_type(path)
    if kind == "parquet":
        yield from read_columnar(load_parquet(path), str(path), stats, check)
        return
    head = check_text_file(path, parquet_ok=kind is None, kind=kind)
    if head.startswith(b"PAR1"):
        yield from read_columnar(load_parquet(path), str(path), stats, check)
    elif kind in ("csv", "tsv"):
        yield from _read_csv(path, "\t" if kind == "tsv" else ",", stats, check)
    elif _is_json_array(path, head):
        yield from read_json_array(path, stats)
    else:
        yield from _read_jsonl(path, stats)


def _is_json_array(path: Path, head: bytes) -> bool:
    """A whole-file JSON array, not JSON Lines whose first line happens to be an array: the
    first line of a pretty-printed array is not JSON by itself, and a one-line array is the
    only content of its file."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text.startswith(b"["):
        return False
    first, _, rest = text.partition(b"\n")
    try:
        value = json.loads(first.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return True  # the array continues on the next lines (or it is broken: its reader says where)
    if rest.strip():
        return False
    with open_bytes(path) as fh:  # the first line parsed alone: is there anything after it?
        fh.readline()
        if fh.read(_SNIFF_BYTES).strip():
            return False
    # One line: an array of records (json.dump without indent), or one JSON Lines record
    # that is an array (a mistake each line will name).
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def check_text_file(path: Path, parquet_ok: bool = False, kind: str | None = None) -> bytes:
    """Raise a one-line CockpitError for a file that cannot hold text records at all;
    returns the first bytes (after any decompression)."""
    if path.is_dir():
        raise CockpitError(f"{path} is a directory, not a data file", "pass the directory itself as data=DIR")
    try:
        with open_bytes(path) as fh:
            head = fh.read(_SNIFF_BYTES)
    except PermissionError as exc:
        raise CockpitError(f"data file {path} is not readable", "fix its permissions") from exc
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise CockpitError(f"cannot read data file {path}: {getattr(exc, 'strerror', None) or exc}",
                           "check the path and its permissions") from exc
    if not head.strip() and len(head) < _SNIFF_BYTES:
        what = "is empty" if not head else "is empty (only blank lines)"
        raise CockpitError(f"data file {path} {what}", _EMPTY_ADVICE)
    if parquet_ok and head.startswith(b"PAR1"):
        return head
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CockpitError(f"data file {path} is UTF-16 encoded", "save it as UTF-8 (no BOM needed)")
    if head.startswith((b"\x1f\x8b", b"PK\x03\x04")):
        kind = "gzip" if head.startswith(b"\x1f\x8b") else "zip"
        advice = "decompress it and pass the .jsonl file" + (" (or name it .jsonl.gz)" if kind == "gzip" else "")
        if kind == "zip":
            advice += " (a ChatGPT export: llm-cockpit data convert-chatgpt EXPORT.zip OUT.jsonl)"
        raise CockpitError(f"data file {path} is a {kind} archive, not JSONL", advice)
    if b"\x00" in head:
        what = {"json": "JSON", "csv": "CSV", "tsv": "TSV"}.get(kind or "", "JSONL")
        raise CockpitError(f"data file {path} is binary, not {what} text",
                           "pass a UTF-8 text file with one JSON object per line")
    return head


# ---------------------------------------------------------------- JSON Lines


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


def _read_jsonl(path: Path, stats: ReadStats) -> Iterator[Record | Problem]:
    shown = str(path)
    bom_lines: list[int] = []
    crlf = bad_utf8 = lines = blank = 0
    first_obj_line: str | None = None
    with open_bytes(path) as fh:
        for line_no, raw, size in _iter_lines(fh):
            lines = line_no
            if raw is None:
                yield Problem(shown, line_no, f"line is {size / 1e6:.1f} MB, over the {MAX_LINE_BYTES // 2**20} MB "
                              "limit for one example (split long documents into several examples)", "too_large")
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
                yield Problem(shown, line_no, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte "
                              f"{exc.start + 1}); save the file as UTF-8", "encoding")
                continue
            if not text.strip():
                blank += 1
                continue
            if first_obj_line is None:
                first_obj_line = text.strip()
                if first_obj_line == "{":
                    _reject_json_object(path)
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield Problem(shown, line_no, f"invalid JSON: {exc.msg} (column {exc.colno})", "json")
                continue
            except RecursionError:
                yield Problem(shown, line_no, "invalid JSON: nested too deeply", "json")
                continue
            yield Record(obj, shown, line=line_no)
    if lines and bad_utf8 * 2 > lines - blank and bad_utf8 == lines - blank:
        raise CockpitError(f"data file {path} is not UTF-8 text ({bad_utf8} of {lines} lines are not valid UTF-8)",
                           "pass a UTF-8 text file with one JSON object per line")
    if lines == blank:
        raise CockpitError(f"data file {path} is empty (only blank lines)", _EMPTY_ADVICE)
    stats.lines += lines
    stats.blank_lines += blank
    stats.bad_utf8 += bad_utf8
    if bom_lines:
        at = "at the start of the file" if bom_lines == [1] else f"on lines {short_list(bom_lines)}"
        stats.notes.append(f"byte-order mark {at} (accepted and ignored)")
    if crlf:
        stats.notes.append(f"{plural(crlf, 'line')} end{'s' if crlf == 1 else ''} with CRLF (Windows line ends; "
                           "accepted)")
    if blank:
        stats.notes.append(f"{plural(blank, 'blank line')} skipped")


def _reject_json_object(path: Path) -> None:
    """A pretty-printed single object is neither JSON Lines nor an array of records."""
    if path.stat().st_size > 32 * MAX_LINE_BYTES:
        return
    try:
        with open_bytes(path) as fh:
            data = json.loads(fh.read().decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, OSError):
        return
    if isinstance(data, dict):
        keys = ", ".join(sorted(map(str, data))[:6])
        lists = [k for k, v in data.items() if isinstance(v, list)]
        hint = f"; the records may be its {lists[0]!r} list" if lists else ""
        raise CockpitError(f"data file {path} is one JSON object (keys: {keys}), not records",
                           f"pass JSON Lines (one object per line) or a JSON array of objects{hint}")


# ---------------------------------------------------------------- CSV / TSV


def _read_csv(path: Path, delimiter: str, stats: ReadStats, check: ColumnCheck | None) -> Iterator[Record | Problem]:
    shown = str(path)
    csv.field_size_limit(MAX_LINE_BYTES)
    with open_bytes(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        try:
            header = next(reader)
        except (StopIteration, csv.Error, UnicodeDecodeError) as exc:
            raise CockpitError(f"data file {path} has no readable header row ({exc})",
                               "the first line must name the columns, e.g. prompt,completion") from exc
        header = [h.strip() for h in header]
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes or not all(header):
            what = f"repeats {', '.join(dupes)}" if dupes else "has an empty column name"
            raise CockpitError(f"data file {path}: the header {what}", "give every column its own name")
        problems = check({h: "string" for h in header}, shown) if check is not None else []
        if problems:  # a missing column would fail every row alike
            yield from problems
            return
        last = reader.line_num
        while True:
            start = last + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield Problem(shown, reader.line_num, f"not valid CSV: {exc}", "csv")
                last = reader.line_num
                continue
            except UnicodeDecodeError as exc:
                raise CockpitError(f"data file {path} is not UTF-8 text ({exc.reason})", "save it as UTF-8") from exc
            last = reader.line_num
            if not row or not any(v.strip() for v in row):
                stats.blank_lines += 1
                continue
            if len(row) != len(header):
                yield Problem(shown, start, f"{len(row)} fields, but the header names {len(header)} columns "
                              f"({', '.join(header)})", "csv")
                continue
            yield Record(dict(zip(header, row)), shown, line=start)
        stats.lines += last


def plural(n: int, noun: str) -> str:
    """``1 line``, ``2 lines``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def short_list(numbers: list, limit: int = 10) -> str:
    """``1, 2, 3 and 7 more``."""
    head = ", ".join(map(str, numbers[:limit]))
    return head + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")
