"""What ``llm-cockpit data check`` says about preference data (DPO pairs, KTO labelled answers).

The same questions as the supervised report (``cockpit.data.report``), asked of pairs: does
every record parse and in which form, how many pairs (or good and bad answers), how long
are prompt and answers in tokens, what share of the tokens is the answers' (what the loss
compares), which examples exceed ``max_length``, and what exactly the first examples say.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from cockpit.data.loading import DataOptions
from cockpit.data.preference import (PAIRED, PreferenceExample, example_tokens, load_preference_examples,
                                     stage_advice)
from cockpit.data.readers import plural, short_list
from cockpit.data.records import Problem
from cockpit.data.report import MAX_KEPT_PROBLEMS, _percentile, _tokenizer_name, problem_lines
from cockpit.errors import CockpitError

_SHOWN_LINES = 8  # lines of each prompt or answer shown
_WIDTH = 160


@dataclass
class PreferenceReport:
    """Everything ``data check`` says about a preference source; ``ok`` is False when any record is bad."""

    path: str
    format: str
    lines: int
    examples: int
    pairs: int
    good: int
    bad: int
    problems: list[Problem]
    problem_count: int
    forms: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    max_length: int | None = None
    tokenizer: str | None = None
    token_stats: dict[str, float] | None = None
    """min, mean, p50, p95, max tokens per sequence (prompt + one answer); ``prompt`` and
    ``answer``: totals over every sequence (a pair is two)."""
    too_long: list = field(default_factory=list)
    """Examples whose prompt and longest answer exceed max_length (cut from the end)."""
    shown: list[dict[str, Any]] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    """Tokens of every sequence (prompt + one answer), for a histogram."""

    @property
    def ok(self) -> bool:
        return not self.problem_count and self.examples > 0

    @property
    def usable(self) -> int:
        """What a run trains on: the pairs or labelled answers (as the supervised report's usable)."""
        return self.examples

    @property
    def stage(self) -> str:
        """The stage that trains this data: dpo for pairs only, kto once labelled answers are in it."""
        return "dpo" if self.format == PAIRED else "kto"

    @property
    def learned_share(self) -> float | None:
        s = self.token_stats
        total = s["prompt"] + s["answer"] if s else 0
        return s["answer"] / total if s and total else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (what ``data check --json`` prints)."""
        too_long = None
        if self.tokenizer is not None:
            too_long = {"max_length": self.max_length, "count": len(self.too_long), "lines": self.too_long}
        return {"path": self.path, "ok": self.ok, "kind": "preference", "format": self.format, "forms": self.forms,
                "lines": self.lines, "examples": self.examples, "pairs": self.pairs,
                "answers": {"good": self.good, "bad": self.bad},
                "problems": [p.to_dict() for p in self.problems], "problem_count": self.problem_count,
                "tokenizer": self.tokenizer, "tokens": self.token_stats, "learned_share": self.learned_share,
                "too_long": too_long, "examples_shown": self.shown, "train_with": stage_advice(self.format),
                "notes": self.notes}

    def counts_text(self) -> str:
        """``72 pairs``, ``100 answers (54 good, 46 bad)``, or both."""
        parts = []
        if self.pairs:
            parts.append(plural(self.pairs, "pair"))
        answers = self.good + self.bad
        if answers:
            parts.append(f"{plural(answers, 'answer')} ({self.good} good, {self.bad} bad)")
        return " and ".join(parts) or "0 examples"

    def to_lines(self, max_problems: int | None = None, marked: bool = True) -> list[str]:
        """Human-readable lines: one per problem (``file:line: message``), then a summary;
        ``marked``: the first examples as prompt / chosen / rejected."""
        grouped = problem_lines(self.problems)
        shown = grouped if max_problems is None else grouped[:max_problems]
        out = [line for line, _ in shown]
        represented = sum(n for _, n in shown)
        if represented < self.problem_count:
            out.append(f"{self.path}: ... and {self.problem_count - represented} more problems (--json lists "
                       f"{'them all' if self.problem_count <= MAX_KEPT_PROBLEMS else f'the first {MAX_KEPT_PROBLEMS}'})")
        forms = ", ".join(f"{n} {form}" for form, n in sorted(self.forms.items(), key=lambda kv: -kv[1]))
        out.append(f"{self.path}: {self.counts_text()} from {plural(self.lines, 'line')} "
                   f"(preference data: {self.format}{'; forms: ' + forms if forms else ''})")
        out += [f"  note: {n}" for n in self.notes]
        if self.examples:
            out.append(f"  train with {stage_advice(self.format)}")
        if self.tokenizer is None:
            out.append("  token lengths: not measured (no tokenizer)")
        else:
            out += self._token_lines()
        if marked:
            out += self._shown_lines()
        if self.ok:
            out.append("OK")
        elif self.problem_count:
            out.append(f"NOT OK: {plural(self.problem_count, 'problem')}")
        else:
            out.append("NOT OK: no examples")
        return out

    def _token_lines(self) -> list[str]:
        out = []
        what = "pairs" if self.format == PAIRED else "examples"
        if self.too_long:
            out.append(f"  longer than max_length={self.max_length} tokens: {len(self.too_long)} {what} "
                       f"(lines {short_list(self.too_long)}), cut from the end")
        else:
            out.append(f"  longer than max_length={self.max_length} tokens: none")
        s = self.token_stats
        if s:
            out.append(f"  tokens per sequence (prompt + answer): min {s['min']:.0f}, mean {s['mean']:.1f}, "
                       f"p50 {s['p50']:.0f}, p95 {s['p95']:.0f}, max {s['max']:.0f} ({self.tokenizer})")
            out.append(f"  tokens per epoch: {s['prompt'] + s['answer']:.0f}, of which answers (learned): "
                       f"{s['answer']:.0f} ({self.learned_share or 0:.0%})")
        return out

    def _shown_lines(self) -> list[str]:
        out = []
        for m in self.shown:
            label = "" if "chosen" in m else f" (an answer labelled {'good' if m['label'] else 'bad'})"
            out.append(f"  {m['where']}{label}:")
            earlier = m["prompt"][:-1]
            if earlier and earlier[0]["role"] == "system":
                out += _field("system", earlier[0]["content"])
                earlier = earlier[1:]
            if earlier:
                out.append(f"    (after {plural(len(earlier), 'earlier turn')} of the conversation)")
            out += _field("prompt", m["prompt"][-1]["content"])
            if "chosen" in m:
                out += _field("chosen", m["chosen"]) + _field("rejected", m["rejected"])
            else:
                out += _field("answer", m["completion"])
        return out


def _field(name: str, text: str) -> list[str]:
    lines = text.split("\n")
    head = [_clip(ln) for ln in lines[:_SHOWN_LINES]]
    if len(lines) > _SHOWN_LINES:
        head.append(f"... ({len(lines) - _SHOWN_LINES} more lines)")
    label = f"{name}:"
    return [f"    {label:<10}{head[0]}"] + [f"    {'':<10}{ln}" for ln in head[1:]]


def _clip(line: str, width: int = _WIDTH) -> str:
    return line if len(line) <= width else line[: width - 2] + " …"


def _label(ex: PreferenceExample, multi: bool) -> Any:
    number = ex.line if ex.line is not None else ex.row
    return f"{os.path.basename(ex.path)}:{number}" if multi else number


def _shown(ex: PreferenceExample) -> dict[str, Any]:
    where = f"line {ex.line}" if ex.line is not None else f"row {ex.row}"
    out: dict[str, Any] = {"where": where, "prompt": [dict(m) for m in ex.prompt]}
    if ex.kind == PAIRED:
        out.update(chosen=ex.chosen, rejected=ex.rejected)
    else:
        out.update(completion=ex.completion, label=ex.label)
    return out


def build_preference_report(spec: str, tokenizer: Any = None, max_length: int = 512, *,
                            options: DataOptions | None = None, show: int = 2) -> PreferenceReport:
    """Validate a preference source and measure it with ``tokenizer`` (None: no token counts);
    raises CockpitError for failures of the whole source."""
    options = options or DataOptions()
    load = load_preference_examples(spec, options)
    multi = len({ex.path for ex in load.examples} | {p.path for p in load.problems}) > 1
    problems = list(load.problems)
    report = PreferenceReport(path=load.path, format=load.format, lines=load.lines, examples=len(load.examples),
                              pairs=load.pairs, good=load.good, bad=load.bad, problems=[], problem_count=0,
                              forms=dict(load.forms), notes=list(load.notes), max_length=max_length)
    lengths: list[int] = []
    prompt_total = answer_total = 0
    if tokenizer is not None:
        report.tokenizer = _tokenizer_name(tokenizer)
        for ex in load.examples:
            try:
                prompt_n, answers = example_tokens(ex, tokenizer)
            except CockpitError as exc:
                problems.append(Problem(ex.path, ex.line, exc.one_line(), "template", row=ex.row))
                continue
            lengths += [prompt_n + a for a in answers]
            prompt_total += prompt_n * len(answers)
            answer_total += sum(answers)
            if prompt_n + max(answers) > max_length:
                report.too_long.append(_label(ex, multi))
        report.lengths = lengths
        if lengths:
            ordered = sorted(lengths)
            report.token_stats = {"min": float(ordered[0]), "mean": sum(ordered) / len(ordered),
                                  "p50": _percentile(ordered, 50), "p95": _percentile(ordered, 95),
                                  "max": float(ordered[-1]), "prompt": float(prompt_total),
                                  "answer": float(answer_total)}
    problems.sort(key=lambda p: (p.path, p.line or p.row or 0))
    report.problem_count = len(problems)
    report.problems = problems[:MAX_KEPT_PROBLEMS]
    report.shown = [_shown(ex) for ex in load.examples[:max(0, show)]]
    return report
