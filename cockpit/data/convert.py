"""``llm-cockpit data convert``: any accepted source as normalized JSON Lines.

What is written is what training reads: one example per line, cleaned, in the chat
``messages`` form (or ``prompt``/``completion`` for single-turn examples), every extra
key of the source kept. A user can read and edit it, and train on it as it is. Plain text
stays ``{"text": ...}``. Nothing is written when a record is bad, unless ``skip_bad``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.data.loading import DataOptions, FormatTally, iter_examples
from cockpit.data.readers import ReadStats
from cockpit.data.records import Example, Problem
from cockpit.data.sources import resolve_source
from cockpit.errors import CockpitError

OUTPUT_FORMATS = ("messages", "prompt_completion")


@dataclass
class ConvertReport:
    """What a conversion wrote and what it could not."""

    source: str
    output: str
    written: int = 0
    problems: list[Problem] = field(default_factory=list)
    formats: dict[str, int] = field(default_factory=dict)
    wrote: bool = False
    """False when nothing was written (bad records without ``skip_bad``)."""

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "output": self.output, "written": self.written, "wrote": self.wrote,
                "formats": self.formats, "problem_count": len(self.problems),
                "problems": [p.to_dict() for p in self.problems]}


def example_record(ex: Example, to: str) -> dict[str, Any]:
    """One example as a normalized JSON object (raises ValueError when ``to`` cannot hold it)."""
    if ex.text is not None:
        return {"text": ex.text, **ex.meta}
    if to == "prompt_completion":
        if not ex.is_single_turn or any(m.get("train") is False for m in ex.messages):
            raise ValueError(f"a conversation of {len(ex.messages)} messages cannot be one prompt/completion "
                             "pair; convert it with --format messages")
        out: dict[str, Any] = {"prompt": ex.prompt, "completion": ex.completion}
        if ex.system is not None:
            out["system"] = ex.system
        return {**out, **ex.meta}
    messages = []
    for m in ex.messages:
        entry = {"role": m["role"], "content": m["content"]}
        if m.get("train") is False:
            entry["loss_weight"] = 0
        messages.append(entry)
    return {"messages": messages, **ex.meta}


def convert_source(spec: str, output: str | os.PathLike[str], *, options: DataOptions | None = None,
                   to: str = "messages", overwrite: bool = False, skip_bad: bool = False) -> ConvertReport:
    """Write every example of ``spec`` to ``output`` as normalized JSONL (atomically).

    Raises CockpitError for a source that cannot be read or an output that cannot be written.
    """
    if to not in OUTPUT_FORMATS:
        raise CockpitError(f"unknown output format {to!r}", f"choose {' or '.join(OUTPUT_FORMATS)}")
    out = Path(output).expanduser()
    if out.exists() and not overwrite:
        raise CockpitError(f"{out} already exists", "choose another name or pass --force")
    if out.is_dir():
        raise CockpitError(f"{out} is a directory", "give the JSONL file to write")
    if not out.parent.is_dir():
        raise CockpitError(f"the folder of {out} does not exist", "create it first")
    options = options or DataOptions()
    source = resolve_source(spec, split=options.split, subset=options.subset)
    report = ConvertReport(source=source.label, output=str(out))
    tally = FormatTally()
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for item in iter_examples(source, options, ReadStats(), tally):
                if isinstance(item, Problem):
                    report.problems.append(item)
                    continue
                try:
                    record = example_record(item, to)
                except ValueError as exc:
                    report.problems.append(Problem(item.path, None if item.by_row else item.line, str(exc),
                                                   "structure", row=item.line if item.by_row else None))
                    continue
                fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
                report.written += 1
        report.problems += tally.mixing_problems()
        report.formats = dict(tally.counts)
        if (report.problems and not skip_bad) or not report.written:
            os.unlink(tmp)
            return report
        os.replace(tmp, out)
        report.wrote = True
        return report
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
