"""Reading records out of a source, one at a time, each with where it came from.

Text files are read by this module, streaming, so that every problem names its
``file:line`` and a bad line never stops the rest of the file from being checked:

* JSON Lines: line by line, each line at most :data:`MAX_LINE_BYTES`;
* a JSON array: element by element (``raw_decode`` over a sliding buffer), never the
  whole file in memory;
* CSV/TSV: Python's ``csv`` module, every value kept as the text it is (pandas would
  turn an answer ``0042`` into 42 and ``NA`` into a missing value).

Columnar data goes through the ``datasets`` library: Parquet files (converted once to
Arrow in the datasets cache and memory-mapped), datasets saved with ``save_to_disk``,
and Hugging Face Hub datasets. Their column types are checked once, before any row.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.data.records import Problem
from cockpit.data.sources import SUPPORTED, Source, cached_hub_snapshot, file_type, hub_offline, hub_reachable
from cockpit.errors import CockpitError, exception_line

# Even a 128k-token context holds only about 0.5 MB of text, so a record over this limit
# would be almost entirely truncated away; refusing it also keeps memory bounded when a
# file without newlines (a dump, a binary) is passed by mistake.
MAX_LINE_BYTES = 2 * 1024 * 1024

_SNIFF_BYTES = 8192
_EMPTY_ADVICE = 'add one JSON object per line, e.g. {"prompt": "...", "completion": "..."}'
_BATCH = 512


@dataclass
class Record:
    """One raw record (a decoded JSON object or a row) and where it is."""

    obj: Any
    path: str
    line: int | None = None
    row: int | None = None


@dataclass
class ReadStats:
    """What the readers saw besides records: counts and notes worth telling the user."""

    lines: int = 0
    """Lines (text files) or rows (columnar data) read, blank lines included."""
    blank_lines: int = 0
    notes: list[str] = field(default_factory=list)
    bad_utf8: int = 0


# Checks a columnar dataset's columns before its rows: (column -> Arrow type, label) -> problems.
ColumnCheck = Callable[[dict[str, str], str], list[Problem]]


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
        yield from _read_columnar(_load_saved(source), source.label, stats, check)
    else:
        yield from _read_columnar(_load_hub(source), source.label, stats, check)


def read_file(path: Path, stats: ReadStats, check: ColumnCheck | None = None) -> Iterator[Record | Problem]:
    """The records of one data file, by its type (the name, else the content)."""
    kind = file_type(path)
    if kind == "parquet":
        yield from _read_columnar(_load_parquet(path), str(path), stats, check)
        return
    head = check_text_file(path, parquet_ok=kind is None, kind=kind)
    if head.startswith(b"PAR1"):
        yield from _read_columnar(_load_parquet(path), str(path), stats, check)
    elif kind in ("csv", "tsv"):
        yield from _read_csv(path, "\t" if kind == "tsv" else ",", stats, check)
    elif _is_json_array(path, head):
        yield from _read_json_array(path, stats)
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
    with _open_bytes(path) as fh:  # the first line parsed alone: is there anything after it?
        fh.readline()
        if fh.read(_SNIFF_BYTES).strip():
            return False
    # One line: an array of records (json.dump without indent), or one JSON Lines record
    # that is an array (a mistake each line will name).
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")


def check_text_file(path: Path, parquet_ok: bool = False, kind: str | None = None) -> bytes:
    """Raise a one-line CockpitError for a file that cannot hold text records at all;
    returns the first bytes (after any decompression)."""
    if path.is_dir():
        raise CockpitError(f"{path} is a directory, not a data file", "pass the directory itself as data=DIR")
    try:
        with _open_bytes(path) as fh:
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
    with _open_bytes(path) as fh:
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
        with _open_bytes(path) as fh:
            data = json.loads(fh.read().decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, OSError):
        return
    if isinstance(data, dict):
        keys = ", ".join(sorted(map(str, data))[:6])
        lists = [k for k, v in data.items() if isinstance(v, list)]
        hint = f"; the records may be its {lists[0]!r} list" if lists else ""
        raise CockpitError(f"data file {path} is one JSON object (keys: {keys}), not records",
                           f"pass JSON Lines (one object per line) or a JSON array of objects{hint}")


# ---------------------------------------------------------------- a JSON array


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


def _read_json_array(path: Path, stats: ReadStats) -> Iterator[Record | Problem]:
    shown = str(path)
    count = problems = 0
    with _open_bytes(path) as fh:
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


# ---------------------------------------------------------------- CSV / TSV


def _read_csv(path: Path, delimiter: str, stats: ReadStats, check: ColumnCheck | None) -> Iterator[Record | Problem]:
    shown = str(path)
    csv.field_size_limit(MAX_LINE_BYTES)
    with _open_bytes(path) as raw:
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


# ---------------------------------------------------------------- columnar: Parquet, saved, hub


def _load_parquet(path: Path):
    from datasets import load_dataset

    try:
        return load_dataset("parquet", data_files=str(path), split="train")
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds for a broken file
        raise CockpitError(f"cannot read Parquet file {path}: {exception_line(exc, 200)}",
                           "check that the file is complete (re-download or re-export it)") from exc


def _pick_split(data, where: str, split: str):
    from datasets import DatasetDict

    if isinstance(data, DatasetDict):
        if split not in data:
            raise CockpitError(f"{where} has no split {split!r} (it has: {', '.join(data)})",
                               "choose one with data_split=")
        return data[split]
    return data


def _load_saved(source: Source):
    from datasets import load_from_disk

    try:
        data = load_from_disk(str(source.path))
    except Exception as exc:  # noqa: BLE001
        raise CockpitError(f"cannot load the saved dataset {source.path}: {exception_line(exc, 200)}",
                           "check that it was written by datasets' save_to_disk and is complete") from exc
    return _pick_split(data, str(source.path), source.split)


def _load_hub(source: Source):
    """The hub dataset from the local cache when offline; through the network otherwise."""
    from datasets import load_dataset

    repo = source.repo or ""
    local = cached_hub_snapshot(repo)
    online = not hub_offline() and hub_reachable()
    if local is None and not online:
        why = "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set" if hub_offline() else "the hub is not reachable"
        raise CockpitError(f"hub dataset {repo} is not in the local Hugging Face cache and {why}",
                           "it needs a network once (unset HF_HUB_OFFLINE, or HF_DATASETS_OFFLINE=0), "
                           "or pass a local file")
    target = repo if online else str(local)
    try:
        return load_dataset(target, name=source.subset, split=source.split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds (ValueError, FileNotFoundError, ...)
        raise CockpitError(f"cannot load hub dataset {repo} (split {source.split}"
                           f"{', subset ' + source.subset if source.subset else ''}): {exception_line(exc, 220)}",
                           "check the id, data_split= and data_subset=") from exc


def _read_columnar(ds, label: str, stats: ReadStats, check: ColumnCheck | None) -> Iterator[Record | Problem]:
    names = list(ds.column_names)
    if check is not None:
        problems = check(column_types(ds), label)
        if problems:
            stats.lines += len(ds)
            yield from problems
            return
    for i, batch in enumerate(ds.iter(batch_size=_BATCH)):
        n = len(batch[names[0]]) if names else 0
        for j in range(n):
            row = i * _BATCH + j + 1
            yield Record({k: batch[k][j] for k in names}, label, row=row)
    stats.lines += len(ds)


def column_types(ds) -> dict[str, str]:
    """Each column's Arrow type as text (``string``, ``int64``, ``list<...>``)."""
    return {name: str(ds.data.schema.field(name).type) for name in ds.column_names}


def plural(n: int, noun: str) -> str:
    """``1 line``, ``2 lines``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def short_list(numbers: list, limit: int = 10) -> str:
    """``1, 2, 3 and 7 more``."""
    head = ", ".join(map(str, numbers[:limit]))
    return head + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")
