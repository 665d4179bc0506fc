"""Training data: sources -> records -> :class:`Example` objects, with every problem located.

A broken record never stops loading: it becomes a :class:`Problem` naming ``file:line``
(or ``file:row N`` for columnar data), and the rest is still read, so ``llm-cockpit data
check`` can list every problem at once. Only failures of a whole file or dataset raise
:class:`~cockpit.errors.CockpitError`.

Each record's format is detected from its own keys (``cockpit.data.formats``). The
supervised formats may share a file (each line says what it is; the report lists which
lines are which), but plain text (every token learned, documents packed together) cannot
be mixed with them: the minority's lines are reported as problems.

:func:`iter_examples` streams (what training and ``data check`` use, so a large file is
never held in memory); :func:`load_examples` collects a whole source into a list.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from pathlib import Path
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cockpit.data.columns import apply_columns, parse_columns
from cockpit.data.formats import DATA_FORMATS, SUPERVISED, detect_format, parse_record
from cockpit.data.readers import ReadStats, plural, read_source, short_list
from cockpit.data.records import Example, Problem, RecordError
from cockpit.data.sources import Source, resolve_source
from cockpit.errors import CockpitError

# Where the records of each format are, kept for the report of a mixed source.
_KEEP_PLACES = 10_000


@dataclass(frozen=True)
class DataOptions:
    """How to read a source: the format (auto-detected per record unless forced), the
    column mapping, the split and subset of hub/saved/split-named data, and cleaning."""

    data_format: str = "auto"
    columns: tuple[tuple[str, str], ...] = ()
    split: str | None = None
    subset: str | None = None
    system_prompt: str | None = None
    clean: bool = True

    def __post_init__(self) -> None:
        if self.data_format not in DATA_FORMATS:
            raise CockpitError(f"unknown data format {self.data_format!r}", f"allowed: {' | '.join(DATA_FORMATS)}")

    @classmethod
    def make(cls, *, data_format: str = "auto", columns: Mapping[str, str] | str | None = None,
             **kw: Any) -> DataOptions:
        return cls(data_format=data_format or "auto", columns=tuple(parse_columns(columns).items()), **kw)

    @classmethod
    def from_config(cls, cfg: Any) -> DataOptions:
        """The options a training config asks for (``data_format``, ``columns``, ``data_split``, ...)."""
        return cls.make(data_format=cfg.data_format, columns=cfg.columns, split=cfg.data_split,
                        subset=cfg.data_subset, system_prompt=cfg.system_prompt)

    @property
    def column_map(self) -> dict[str, str]:
        return dict(self.columns)

    def for_eval(self) -> DataOptions:
        """The options of held-out data: the ``test`` split of a hub, saved or split-named source
        (``data_split`` is the training split; a spec's own ``:split`` still wins)."""
        return dataclasses.replace(self, split="test")


@dataclass
class FormatTally:
    """How many records of each format, and where they are, to report a mixed source."""

    multi_file: bool = False
    """Records come from several files: say which file each line is in."""
    counts: dict[str, int] = field(default_factory=dict)
    places: dict[str, list[tuple[str, int, bool]]] = field(default_factory=dict)
    """(path, line, by_row) of the first records of each format."""

    def add(self, ex: Example) -> None:
        self.counts[ex.format] = self.counts.get(ex.format, 0) + 1
        kept = self.places.setdefault(ex.format, [])
        if len(kept) < _KEEP_PLACES:
            kept.append((ex.path, ex.line, ex.by_row))

    @property
    def format(self) -> str:
        """The one format of the source, ``mixed``, or ``none`` when nothing loaded."""
        if not self.counts:
            return "none"
        return next(iter(self.counts)) if len(self.counts) == 1 else "mixed"

    def minority(self) -> set[str]:
        """The formats whose records are problems: the smaller side of a text/supervised mix
        (plain text and supervised examples train differently)."""
        if "text" not in self.counts or len(self.counts) < 2:
            return set()
        supervised = sum(n for f, n in self.counts.items() if f in SUPERVISED)
        return {"text"} if supervised >= self.counts["text"] else set(SUPERVISED)

    def mixing_problems(self) -> list[Problem]:
        """One problem per record of the minority (the first ones of each format)."""
        out = []
        for fmt in sorted(self.minority()):
            others = ", ".join(f for f in self.counts if f not in self.minority())
            for path, line, by_row in self.places.get(fmt, []):
                out.append(Problem(path, None if by_row else line,
                                   f"a {fmt} record in data of {others} records: plain text and supervised "
                                   "examples train differently; put them in separate files or force one with "
                                   "data_format=", "mixed", row=line if by_row else None))
        return out

    def label(self, path: str, line: int) -> str:
        """``12``, or ``file.jsonl:12`` when it matters which file."""
        return f"{Path(path).name}:{line}" if self.multi_file else str(line)

    def notes(self) -> list[str]:
        if len(self.counts) < 2:
            return []
        parts = []
        for fmt, n in sorted(self.counts.items(), key=lambda kv: -kv[1]):
            lines = [self.label(p, ln) for p, ln, _ in self.places[fmt][:7]]
            parts.append(f"{n} {fmt} ({'lines' if n > 1 else 'line'} {short_list(lines, 6)}"
                         f"{' ...' if n > len(lines) else ''})")
        return ["formats: " + ", ".join(parts)]


def column_check(options: DataOptions):
    """The check of a columnar dataset's columns (see ``readers.read_source``)."""

    def check(types: dict[str, str], label: str) -> list[Problem]:
        probe = {name: "" for name in types}
        mapped = apply_columns(probe, options.column_map)
        renamed = {ours: types[theirs] for ours, theirs in options.column_map.items() if theirs in types}
        typed = {**{k: v for k, v in types.items() if k in mapped}, **renamed}
        try:
            fmt = options.data_format if options.data_format != "auto" else detect_format(mapped)
            if fmt in ("prompt_completion", "alpaca", "text"):  # flat records: a missing column shows here
                parse_record({k: "x" for k in mapped}, data_format=fmt)
        except RecordError as exc:
            return [Problem(label, None, f"{exc} (columns: {', '.join(types)})", exc.kind)]
        text_columns = {"prompt_completion": ("completion",), "alpaca": ("instruction", "output"),
                        "text": ("text",), "messages": (), "sharegpt": ()}[fmt]
        for col in text_columns:
            kind = typed.get(col)
            if kind is not None and "string" not in kind and not kind.startswith("list"):
                return [Problem(label, None, f"column {col!r} holds {kind} values, not text", "type")]
        return []

    return check


def iter_examples(source: Source, options: DataOptions, stats: ReadStats,
                  tally: FormatTally | None = None) -> Iterator[Example | Problem]:
    """The examples of ``source`` in order, and a Problem for every bad record, streaming."""
    columns = options.column_map
    for item in read_source(source, stats, check=column_check(options)):
        if isinstance(item, Problem):
            yield item
            continue
        number = item.line if item.line is not None else item.row
        try:
            ex = parse_record(item.obj, data_format=options.data_format, columns=columns, clean=options.clean,
                              system_prompt=options.system_prompt, line=number or 0)
        except RecordError as exc:
            yield Problem(item.path, item.line, str(exc), exc.kind, row=item.row)
            continue
        ex.path, ex.by_row = item.path, item.row is not None
        if tally is not None:
            tally.add(ex)
        yield ex


@dataclass
class LoadResult:
    """What :func:`load_examples` found: the good examples and every problem."""

    examples: list[Example]
    problems: list[Problem]
    format: str
    """``prompt_completion``, ``messages``, ``alpaca``, ``sharegpt``, ``text``, ``mixed``, or ``none``."""
    path: str = ""
    lines: int = 0
    """Lines (or rows) read, blank ones included."""
    blank_lines: int = 0
    notes: list[str] = field(default_factory=list)
    """Things accepted but worth knowing (a byte-order mark, CRLF line ends, blank lines, mixed formats)."""
    formats: dict[str, int] = field(default_factory=dict)


def load_examples(spec: Any, *, clean: bool = True, system_prompt: str | None = None,
                  options: DataOptions | None = None, **kw: Any) -> LoadResult:
    """Read a whole source; every bad record becomes a :class:`Problem`, loading goes on.

    ``spec`` is a path, a directory, a glob, a saved dataset or ``hf:ORG/NAME``; ``kw`` are
    :meth:`DataOptions.make` arguments (``data_format``, ``columns``, ``split``, ``subset``).
    Raises CockpitError only for failures of the whole source.
    """
    options = options or DataOptions.make(clean=clean, system_prompt=system_prompt, **kw)
    source = resolve_source(str(spec), split=options.split, subset=options.subset)
    stats, tally = ReadStats(), FormatTally(multi_file=not source.single_file and source.kind == "files")
    examples: list[Example] = []
    problems: list[Problem] = []
    for item in iter_examples(source, options, stats, tally):
        (problems if isinstance(item, Problem) else examples).append(item)
    minority = tally.minority()
    if minority:
        problems += tally.mixing_problems()
        examples = [ex for ex in examples if ex.format not in minority]
        problems.sort(key=lambda p: (p.path, p.line or p.row or 0))
    return LoadResult(examples=examples, problems=problems, format=tally.format, path=source.label,
                      lines=stats.lines, blank_lines=stats.blank_lines, notes=stats.notes + tally.notes(),
                      formats=dict(tally.counts))


def strict_error(problems: list[Problem], spec: Any) -> CockpitError:
    """The one line training shows for bad data: the first problem and how many more."""
    more = len(problems) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return CockpitError(f"{problems[0]}{tail}", f"fix the data; llm-cockpit data check {spec} lists every problem")


def load_examples_strict(spec: Any, **kw: Any) -> list[Example]:
    """Like :func:`load_examples`, but any problem is an error (what evaluation uses).

    The CockpitError names the first problem as ``file:line`` and how many more there are.
    """
    result = load_examples(spec, **kw)
    if result.problems:
        raise strict_error(result.problems, spec)
    if not result.examples:
        raise CockpitError(f"data file {spec} has no examples", "add one JSON object per line")
    return result.examples


# ---------------------------------------------------------------- split


def example_digest(ex: Example) -> bytes:
    """A stable 16-byte identity of an example's content (duplicates and splitting)."""
    h = hashlib.blake2b(digest_size=16)
    for role, content in ex.key():
        h.update(role.encode())
        h.update(b"\0")
        h.update(content.encode("utf-8", "surrogatepass"))
        h.update(b"\1")
    return h.digest()


def split_indices(keys: list[Any], eval_split: float, seed: int) -> tuple[list[int], list[int]]:
    """Which positions to train on and which to hold out, deterministically.

    Equal keys (copies of one example) always land on the same side, so the eval set never
    contains a copy of a training example (no leakage). With ``eval_split > 0`` and at least
    two distinct keys, at least one position is held out and at least one kept. Both lists
    are in order.
    """
    if not 0 <= eval_split < 1:
        raise CockpitError(f"eval_split={eval_split} is out of range", "use 0 <= eval_split < 1")
    groups: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    order = list(groups)
    if eval_split == 0 or len(order) < 2:
        return list(range(len(keys))), []
    random.Random(seed).shuffle(order)
    target = max(1, round(len(keys) * eval_split))
    held: set[int] = set()
    held_groups = 0
    for key in order:
        if len(held) >= target or held_groups == len(order) - 1:
            break
        if len(held) + len(groups[key]) <= target:
            held.update(groups[key])
            held_groups += 1
    if not held:  # every group of copies is bigger than the target: hold out the smallest
        held.update(min((groups[k] for k in order), key=len))
    train = [i for i in range(len(keys)) if i not in held]
    return train, sorted(held)


def split_examples(examples: list[Example], eval_split: float,
                   seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out ``eval_split`` of the examples for evaluation (see :func:`split_indices`)."""
    train, held = split_indices([ex.key() for ex in examples], eval_split, seed)
    return [examples[i] for i in train], [examples[i] for i in held]


__all__ = ["DataOptions", "Example", "FormatTally", "LoadResult", "Problem", "iter_examples", "load_examples",
           "load_examples_strict", "plural", "split_examples", "split_indices", "strict_error"]
