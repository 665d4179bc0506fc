"""``eval RUN --regression``: what the fine-tune cost in general ability (cockpit.evaluation.regression)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cockpit.errors import CockpitError

METRICS = ("acc", "acc_norm")


def cmd_regression(args, run_dir: Path | None, progress) -> int:
    from cockpit.evaluation import regression
    if run_dir is None:
        raise CockpitError("--regression compares a run with its base model",
                           "give a run (a name, a path or 'latest'), not a model")
    if args.data or args.baseline:
        raise CockpitError("--regression scores lm-eval tasks on the base and the tuned model; --data and "
                           "--baseline belong to the plain eval", "leave them out, or run the plain eval separately")
    missing = regression.lm_eval_missing()
    if missing:
        if not _interactive(args) or not _ask(f"{missing.split(';')[0]}. Install {regression.LM_EVAL_PIN} now?"):
            raise CockpitError(missing)
        regression.install(progress)
        if regression.lm_eval_missing():
            raise CockpitError(regression.lm_eval_missing())
    section = regression.run_regression(run_dir, regression.parse_tasks(args.tasks), args.limit,
                                        args.chat_template, progress)
    if args.json:
        print(json.dumps(section, indent=2))
        return 0
    print_regression(section)
    print(f"\nwritten: {run_dir / 'eval.json'} (section regression)")
    return 0


def _interactive(args) -> bool:
    return not args.json and sys.stdin.isatty() and sys.stderr.isatty()


def _ask(question: str) -> bool:
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        return input().strip().lower() in ("y", "yes")
    except EOFError:
        return False


def print_regression(section: dict) -> None:
    """Base vs tuned vs change, per task and metric (standard errors where lm-eval gives them)."""
    from rich.console import Console
    from rich.table import Table

    base, tuned, delta, items = section["base"], section["tuned"], section["delta"], section["items"]
    seconds = section.get("seconds", {})
    how = "chat template" if section.get("chat_template") else "plain prompts"
    table = Table(title=f"general ability before and after the fine-tune (lm-eval, {how})")
    for name, justify in (("task", "left"), ("metric", "left"), ("base model", "right"), ("fine-tuned", "right"),
                          ("change", "right"), ("items", "right")):
        table.add_column(name, justify=justify)
    for task in section["tasks"] + [t for t in tuned if t not in section["tasks"]]:
        for metric in [m for m in METRICS if m in tuned.get(task, {})] or sorted(
                m for m in tuned.get(task, {}) if "_stderr" not in m):
            table.add_row(task, metric, _cell(base.get(task, {}), metric), _cell(tuned.get(task, {}), metric),
                          _change(delta.get(task, {}).get(metric)), str(items.get(task, "-")))
    Console().print(table)
    if seconds:
        print(f"time: base {seconds.get('base', 0):.0f} s, fine-tuned {seconds.get('tuned', 0):.0f} s; "
              "change = fine-tuned - base (negative: the fine-tune cost general ability)")


def _cell(scores: dict, metric: str) -> str:
    value = scores.get(metric)
    if value is None:
        return "-"
    err = scores.get(f"{metric}_stderr")
    return f"{value:.3f}" + (f" ± {err:.3f}" if err is not None else "")


def _change(d) -> str:
    if d is None:
        return "-"
    color = "green" if d > 0 else "red" if d < 0 else "dim"
    return f"[{color}]{d:+.3f}[/]"
