"""The data validation report behind ``llm-cockpit data check``.

It answers the questions to ask before training: does every line parse, are there
empty samples or duplicates, how many examples are longer than ``max_length`` and what
will happen to them, and how long are the examples in tokens.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from cockpit.data import Problem, load_examples, plural


@dataclass
class DataReport:
    """Everything ``data check`` says about one file; ``ok`` is False when any line is bad."""

    path: str
    format: str
    lines: int
    examples: int
    problems: list[Problem]
    empty_lines: list[int]
    """Lines whose prompt or completion is empty (each also listed as a problem)."""
    duplicates: list[list[int]]
    """Groups of line numbers with the same prompt and completion."""
    notes: list[str] = field(default_factory=list)
    max_length: int | None = None
    tokenizer: str | None = None
    truncated_lines: list[int] = field(default_factory=list)
    """Longer than max_length, cut from the end; part of the answer is still learned."""
    dropped_lines: list[int] = field(default_factory=list)
    """Longer than max_length with nothing of the answer left after the cut; skipped."""
    token_stats: dict[str, float] | None = None
    """min, mean, p50, p95, max tokens per example (before truncation); ``total`` and
    ``trainable``: tokens one epoch trains on and how many of them carry a loss."""

    @property
    def usable(self) -> int:
        """Examples training can use: valid and not dropped for length."""
        return self.examples - len(self.dropped_lines)

    @property
    def ok(self) -> bool:
        """No bad line, and at least one example left to train on."""
        return not self.problems and self.usable > 0

    @property
    def too_long(self) -> int:
        return len(self.truncated_lines) + len(self.dropped_lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (what ``data check --json`` prints)."""
        too_long = None
        if self.max_length is not None and self.tokenizer is not None:
            too_long = {"max_length": self.max_length, "count": self.too_long,
                        "truncated": len(self.truncated_lines), "dropped": len(self.dropped_lines),
                        "truncated_lines": self.truncated_lines, "dropped_lines": self.dropped_lines}
        return {
            "path": self.path, "ok": self.ok, "format": self.format, "lines": self.lines,
            "examples": self.examples, "usable": self.usable,
            "problems": [p.to_dict() for p in self.problems],
            "problem_count": len(self.problems),
            "empty": {"count": len(self.empty_lines), "lines": self.empty_lines},
            "duplicates": {"count": sum(len(g) - 1 for g in self.duplicates),
                           "groups": self.duplicates},
            "too_long": too_long,
            "tokenizer": self.tokenizer,
            "tokens": self.token_stats,
            "notes": self.notes,
        }

    def to_lines(self, max_problems: int | None = None) -> list[str]:
        """Human-readable lines: one per problem (``file:line: message``), then a summary."""
        shown = self.problems if max_problems is None else self.problems[:max_problems]
        out = [str(p) for p in shown]
        if len(shown) < len(self.problems):
            out.append(f"{self.path}: ... and {len(self.problems) - len(shown)} more problems "
                       "(--json lists them all)")
        out.append(f"{self.path}: {plural(self.examples, 'example')} from {plural(self.lines, 'line')} "
                   f"(format: {self.format})")
        out += [f"  note: {n}" for n in self.notes]
        if self.empty_lines:
            out.append(f"  empty samples: {len(self.empty_lines)} (lines {_lines(self.empty_lines)})")
        if self.duplicates:
            extra = sum(len(g) - 1 for g in self.duplicates)
            groups = "; ".join(_lines(g) for g in self.duplicates[:5])
            more = f"; and {len(self.duplicates) - 5} more groups" if len(self.duplicates) > 5 else ""
            out.append(f"  duplicates: {extra} (same prompt and completion on lines {groups}{more}); "
                       "they are kept and weigh more in training")
        if self.tokenizer is None:
            out.append("  token lengths: not measured (no tokenizer)")
        else:
            if self.too_long:
                parts = []
                if self.truncated_lines:
                    parts.append(f"{len(self.truncated_lines)} truncated from the end "
                                 f"(lines {_lines(self.truncated_lines)})")
                if self.dropped_lines:
                    parts.append(f"{len(self.dropped_lines)} dropped, the prompt alone fills "
                                 f"max_length (lines {_lines(self.dropped_lines)})")
                out.append(f"  longer than max_length={self.max_length} tokens: {self.too_long}: "
                           + ", ".join(parts))
            else:
                out.append(f"  longer than max_length={self.max_length} tokens: none")
            if self.token_stats:
                s = self.token_stats
                out.append(f"  tokens per example: min {s['min']:.0f}, mean {s['mean']:.1f}, "
                           f"p50 {s['p50']:.0f}, p95 {s['p95']:.0f}, max {s['max']:.0f} "
                           f"({self.tokenizer})")
                share = s["trainable"] / s["total"] if s["total"] else 0.0
                out.append(f"  tokens per epoch: {s['total']:.0f}, of which learned (answers): "
                           f"{s['trainable']:.0f} ({share:.0%})")
        if self.ok:
            out.append("OK")
        elif self.problems:
            out.append(f"NOT OK: {plural(len(self.problems), 'problem')}")
        elif self.examples:
            out.append(f"NOT OK: no example fits max_length={self.max_length}; raise it")
        else:
            out.append("NOT OK: no examples")
        return out


def _lines(numbers: list[int], limit: int = 10) -> str:
    head = ", ".join(map(str, numbers[:limit]))
    return head + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


def _percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * q // 100))
    return float(sorted_values[int(rank) - 1])


def build_report(path: str | os.PathLike[str], tokenizer: Any = None, max_length: int = 512,
                 *, system_prompt: str | None = None) -> DataReport:
    """Validate a data file and measure it; raises CockpitError for file-level failures.

    With a tokenizer, every example is tokenized exactly as training will do it, which
    gives the token-length statistics and which examples exceed ``max_length``.
    """
    from cockpit.tokenize import encode_example  # tokenize imports data; keep this lazy

    result = load_examples(path, system_prompt=system_prompt)
    seen: dict[tuple, list[int]] = {}
    for ex in result.examples:
        seen.setdefault(ex.key(), []).append(ex.line)
    report = DataReport(
        path=result.path, format=result.format, lines=result.lines,
        examples=len(result.examples), problems=result.problems,
        empty_lines=[p.line for p in result.problems if p.kind == "empty" and p.line is not None],
        duplicates=[lines for lines in seen.values() if len(lines) > 1],
        notes=list(result.notes), max_length=max_length,
    )
    if tokenizer is None:
        return report
    report.tokenizer = _tokenizer_name(tokenizer)
    lengths: list[int] = []
    total = trainable = 0
    for ex in result.examples:
        tok = encode_example(ex, tokenizer)
        lengths.append(len(tok))
        if len(tok) > max_length:
            kept = sum(1 for x in tok.labels[:max_length] if x != -100)
            (report.truncated_lines if kept else report.dropped_lines).append(ex.line)
            if kept:
                total += max_length
                trainable += kept
        else:
            total += len(tok)
            trainable += tok.num_trainable
    if lengths:
        ordered = sorted(lengths)
        report.token_stats = {
            "min": float(ordered[0]), "mean": sum(ordered) / len(ordered),
            "p50": _percentile(ordered, 50), "p95": _percentile(ordered, 95),
            "max": float(ordered[-1]), "total": float(total), "trainable": float(trainable),
        }
    return report


def _tokenizer_name(tokenizer: Any) -> str:
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    return os.path.basename(str(name).rstrip("/")) or str(name)
