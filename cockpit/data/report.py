"""The data validation report behind ``llm-cockpit data check`` and the wizard's data step.

It answers the questions to ask before training: does every record parse, in which
format, are there empty samples or duplicates, how many examples are longer than
``max_length`` and what happens to them, how long are the examples in tokens, what share
of the tokens is learned, and what exactly will the model see (the first examples after
the chat template, the learned tokens marked). An example with nothing to learn (every
label masked: a template that swallows the answer, an answer cut off by ``max_length``)
is listed with its line; when no example is left, the data is refused.

The source is read once, streaming: a large file is never held in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from cockpit.data.loading import DataOptions, FormatTally, example_digest, iter_examples
from cockpit.data.readers import ReadStats, plural, short_list
from cockpit.data.records import Example, Problem
from cockpit.data.sources import resolve_source
from cockpit.errors import CockpitError

# Problems kept for the report (all are counted); --json lists the kept ones.
MAX_KEPT_PROBLEMS = 10_000
MARKED_TOKENS = 400  # tokens of each shown example


@dataclass
class DataReport:
    """Everything ``data check`` says about one source; ``ok`` is False when any record is bad."""

    path: str
    format: str
    lines: int
    examples: int
    problems: list[Problem]
    empty_lines: list
    """Records whose prompt or completion is empty (each also listed as a problem)."""
    duplicates: list[list]
    """Groups of line numbers with the same prompt and completion."""
    notes: list[str] = field(default_factory=list)
    max_length: int | None = None
    tokenizer: str | None = None
    truncated_lines: list = field(default_factory=list)
    """Longer than max_length, cut from the end; part of the answer is still learned."""
    dropped_lines: list = field(default_factory=list)
    """Longer than max_length with nothing of the answer left after the cut; skipped."""
    unlearned_lines: list = field(default_factory=list)
    """Nothing learned even uncut (the template drops the answer, every loss_weight 0); skipped."""
    token_stats: dict[str, float] | None = None
    """min, mean, p50, p95, max tokens per example (before truncation); ``total`` and
    ``trainable``: tokens one epoch trains on and how many of them carry a loss."""
    lengths: list[int] = field(default_factory=list)
    """Tokens per example, for a histogram."""
    formats: dict[str, int] = field(default_factory=dict)
    marked: list[dict[str, Any]] = field(default_factory=list)
    """The first examples as the model sees them: ``where``, ``segments`` [(text, learned)], ``learned_share``."""
    problem_count: int = 0
    by_row: bool = False
    """``lines`` counts rows (columnar data)."""

    @property
    def usable(self) -> int:
        """Examples training can use: valid and with something left to learn."""
        return self.examples - len(self.dropped_lines) - len(self.unlearned_lines)

    @property
    def ok(self) -> bool:
        """No bad record, and at least one example left to train on."""
        return not self.problem_count and self.usable > 0

    @property
    def too_long(self) -> int:
        return len(self.truncated_lines) + len(self.dropped_lines)

    @property
    def learned_share(self) -> float | None:
        s = self.token_stats
        return s["trainable"] / s["total"] if s and s["total"] else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (what ``data check --json`` prints)."""
        too_long = None
        if self.max_length is not None and self.tokenizer is not None:
            too_long = {"max_length": self.max_length, "count": self.too_long,
                        "truncated": len(self.truncated_lines), "dropped": len(self.dropped_lines),
                        "truncated_lines": self.truncated_lines, "dropped_lines": self.dropped_lines}
        return {
            "path": self.path, "ok": self.ok, "format": self.format, "formats": self.formats,
            "lines": self.lines, "examples": self.examples, "usable": self.usable,
            "problems": [p.to_dict() for p in self.problems],
            "problem_count": self.problem_count,
            "empty": {"count": len(self.empty_lines), "lines": self.empty_lines},
            "duplicates": {"count": sum(len(g) - 1 for g in self.duplicates), "groups": self.duplicates},
            "too_long": too_long,
            "nothing_learned": {"count": len(self.unlearned_lines), "lines": self.unlearned_lines},
            "tokenizer": self.tokenizer,
            "tokens": self.token_stats,
            "learned_share": self.learned_share,
            "examples_shown": [{"where": m["where"], "learned_share": m["learned_share"],
                                "truncated": m["truncated"],
                                "segments": [{"text": t, "learned": learned} for t, learned in m["segments"]]}
                               for m in self.marked],
            "notes": self.notes,
        }

    def to_lines(self, max_problems: int | None = None, marked: bool = True) -> list[str]:
        """Human-readable lines: one per problem (``file:line: message``), then a summary.

        ``marked``: show the first examples as the model sees them, learned text in ``[[...]]``.
        """
        grouped = problem_lines(self.problems)
        shown = grouped if max_problems is None else grouped[:max_problems]
        out = [line for line, _ in shown]
        represented = sum(n for _, n in shown)
        if represented < self.problem_count:
            out.append(f"{self.path}: ... and {self.problem_count - represented} more problems (--json lists "
                       f"{'them all' if self.problem_count <= MAX_KEPT_PROBLEMS else f'the first {MAX_KEPT_PROBLEMS}'})")
        unit = "row" if self.by_row else "line"
        out.append(f"{self.path}: {plural(self.examples, 'example')} from {plural(self.lines, unit)} "
                   f"(format: {self.format})")
        out += [f"  note: {n}" for n in self.notes]
        if self.empty_lines:
            out.append(f"  empty samples: {len(self.empty_lines)} (lines {short_list(self.empty_lines)})")
        if self.duplicates:
            extra = sum(len(g) - 1 for g in self.duplicates)
            groups = "; ".join(short_list(g) for g in self.duplicates[:5])
            more = f"; and {len(self.duplicates) - 5} more groups" if len(self.duplicates) > 5 else ""
            out.append(f"  duplicates: {extra} (same prompt and completion on lines {groups}{more}); "
                       "they are kept and weigh more in training")
        if self.tokenizer is None:
            out.append("  token lengths: not measured (no tokenizer)")
        else:
            out += self._token_lines()
            if marked:
                out += self._marked_lines()
        if self.ok:
            out.append("OK")
        elif self.problem_count:
            out.append(f"NOT OK: {plural(self.problem_count, 'problem')}")
        elif self.examples and self.unlearned_lines and not self.dropped_lines:
            out.append("NOT OK: no example has a token to learn (see 'nothing to learn' above)")
        elif self.examples:
            out.append(f"NOT OK: no example fits max_length={self.max_length}; raise it")
        else:
            out.append("NOT OK: no examples")
        return out

    def _token_lines(self) -> list[str]:
        out = []
        if self.too_long:
            parts = []
            if self.truncated_lines:
                parts.append(f"{len(self.truncated_lines)} truncated from the end (lines {short_list(self.truncated_lines)})")
            if self.dropped_lines:
                parts.append(f"{len(self.dropped_lines)} dropped, the prompt alone fills max_length "
                             f"(lines {short_list(self.dropped_lines)})")
            out.append(f"  longer than max_length={self.max_length} tokens: {self.too_long}: " + ", ".join(parts))
        else:
            out.append(f"  longer than max_length={self.max_length} tokens: none")
        if self.unlearned_lines:
            out.append(f"  nothing to learn in {plural(len(self.unlearned_lines), 'example')} (lines "
                       f"{short_list(self.unlearned_lines)}): every token is masked, so they are skipped "
                       "(answers with loss_weight 0, or a chat template that leaves the answer out)")
        if self.token_stats:
            s = self.token_stats
            out.append(f"  tokens per example: min {s['min']:.0f}, mean {s['mean']:.1f}, p50 {s['p50']:.0f}, "
                       f"p95 {s['p95']:.0f}, max {s['max']:.0f} ({self.tokenizer})")
            if self.format == "text":
                out.append(f"  tokens per epoch: {s['total']:.0f}, all of them learned (plain text, packed into "
                           f"rows of {self.max_length})")
            else:
                out.append(f"  tokens per epoch: {s['total']:.0f}, of which learned (answers): {s['trainable']:.0f} "
                           f"({self.learned_share or 0:.0%})")
        return out

    def _marked_lines(self) -> list[str]:
        out = []
        for m in self.marked:
            cut = ", cut at max_length" if m["truncated"] else ""
            out.append(f"  {m['where']} as the model sees it ([[learned]], {m['learned_share']:.0%} learned{cut}):")
            text = "".join(f"[[{t}]]" if learned else t for t, learned in m["segments"])
            out += ["    " + _clip(ln) for ln in text.rstrip("\n").split("\n")]
        return out


def _clip(line: str, width: int = 200) -> str:
    return line if len(line) <= width else line[: width - 2] + " …"


def problem_lines(problems: list[Problem]) -> list[tuple[str, int]]:
    """``(line, problems it stands for)``: one line per problem, except that a message
    repeated on many records (preference data, a missing column) is one line naming the
    first places and how many more. In the order the problems were found."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, p in enumerate(problems):
        groups.setdefault((p.path, p.message), []).append(i)
    out: list[tuple[int, str, int]] = []  # (first index, line, count)
    for (path, message), members in groups.items():
        if len(members) <= 3:
            out += [(i, str(problems[i]), 1) for i in members]
            continue
        places = [problems[i].where[len(path) + 1:] for i in members[:3]]
        out.append((members[0], f"{path}:{', '.join(places)} and {len(members) - 3} more: {message}", len(members)))
    return [(line, n) for _, line, n in sorted(out)]


def _percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * q // 100))
    return float(sorted_values[int(rank) - 1])


class _Measure:
    """Token statistics of examples as training will see them, one example at a time."""

    def __init__(self, report: DataReport, tokenizer: Any, max_length: int, show: int) -> None:
        self.report, self.tokenizer, self.max_length, self.show = report, tokenizer, max_length, show
        self.total = self.trainable = 0

    def add(self, ex: Example, label: Any) -> Problem | None:
        from cockpit.data.tokenize import encode_example, learned_segments

        try:
            tok = encode_example(ex, self.tokenizer)
        except CockpitError as exc:
            return Problem(ex.path, None if ex.by_row else ex.line, exc.one_line(), "template",
                           row=ex.line if ex.by_row else None)
        r = self.report
        r.lengths.append(len(tok))
        kept_labels = tok.labels[:self.max_length]
        learned = sum(1 for x in kept_labels if x != -100)
        if ex.format == "text":
            # documents are packed into rows of max_length: nothing is cut, every token learned
            self.total += len(tok)
            self.trainable += len(tok)
        elif tok.num_trainable == 0:
            r.unlearned_lines.append(label)
        elif len(tok) > self.max_length:
            (r.truncated_lines if learned else r.dropped_lines).append(label)
            if learned:
                self.total += self.max_length
                self.trainable += learned
        else:
            self.total += len(tok)
            self.trainable += tok.num_trainable
        if len(r.marked) < self.show and tok.num_trainable:
            shown = tok if ex.format == "text" else type(tok)(tok.input_ids[:self.max_length], kept_labels)
            r.marked.append({"where": f"{'row' if ex.by_row else 'line'} {ex.line}",
                             "segments": learned_segments(shown, self.tokenizer, MARKED_TOKENS),
                             "learned_share": (shown.num_trainable / len(shown)) if len(shown) else 0.0,
                             "truncated": len(tok) > self.max_length and ex.format != "text"})
        return None

    def finish(self) -> None:
        if not self.report.lengths:
            return
        ordered = sorted(self.report.lengths)
        self.report.token_stats = {
            "min": float(ordered[0]), "mean": sum(ordered) / len(ordered), "p50": _percentile(ordered, 50),
            "p95": _percentile(ordered, 95), "max": float(ordered[-1]), "total": float(self.total),
            "trainable": float(self.trainable)}


def build_report(path: str | os.PathLike[str], tokenizer: Any = None, max_length: int = 512, *,
                 system_prompt: str | None = None, options: DataOptions | None = None, show: int = 2,
                 **kw: Any) -> DataReport:
    """Validate a data source and measure it; raises CockpitError for failures of the whole source.

    With a tokenizer, every example is tokenized exactly as training will do it, which
    gives the token-length statistics, the learned share, which examples exceed
    ``max_length`` or have nothing to learn, and the first ``show`` examples marked.
    ``kw`` are :meth:`DataOptions.make` arguments (``data_format``, ``columns``, ...).
    """
    options = options or DataOptions.make(system_prompt=system_prompt, **kw)
    source = resolve_source(str(path), split=options.split, subset=options.subset)
    multi = source.kind == "files" and not source.single_file
    stats, tally = ReadStats(), FormatTally(multi_file=multi)
    report = DataReport(path=source.label, format="none", lines=0, examples=0, problems=[], empty_lines=[],
                        duplicates=[], max_length=max_length)
    measure = _Measure(report, tokenizer, max_length, show) if tokenizer is not None else None
    if tokenizer is not None:
        report.tokenizer = _tokenizer_name(tokenizer)
    first_seen: dict[bytes, Any] = {}
    groups: dict[bytes, list] = {}

    def problem(p: Problem) -> None:
        report.problem_count += 1
        if len(report.problems) < MAX_KEPT_PROBLEMS:
            report.problems.append(p)
        if p.kind == "empty" and (p.line or p.row) is not None:
            report.empty_lines.append(_label(p.path, p.line or p.row, multi))

    for item in iter_examples(source, options, stats, tally):
        if isinstance(item, Problem):
            problem(item)
            continue
        report.examples += 1
        report.by_row = item.by_row
        label = _label(item.path, item.line, multi)
        digest = example_digest(item)
        if digest in first_seen:
            groups.setdefault(digest, [first_seen[digest]]).append(label)
        else:
            first_seen[digest] = label
        if measure is not None:
            bad = measure.add(item, label)
            if bad is not None:
                problem(bad)
    if tally.minority():
        for p in tally.mixing_problems():
            problem(p)
        report.problems.sort(key=lambda p: (p.path, p.line or p.row or 0))
    if measure is not None:
        measure.finish()
    report.duplicates = list(groups.values())
    report.format, report.formats = tally.format, dict(tally.counts)
    report.lines, report.notes = stats.lines, stats.notes + tally.notes()
    return report


def _label(path: str, number: int | None, multi: bool) -> Any:
    """Line numbers are plain numbers for one file, ``name:line`` strings across several."""
    if not multi:
        return number
    return f"{os.path.basename(path)}:{number}"


def _tokenizer_name(tokenizer: Any) -> str:
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    return os.path.basename(str(name).rstrip("/")) or str(name)
