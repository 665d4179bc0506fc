"""``eval`` (a run or a model against held-out data) and ``demo`` (the offline proof)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from cockpit.errors import CockpitError

METRIC_LABELS = {
    "fact_recall": "fact recall", "exact_match": "exact match", "token_jaccard": "token Jaccard",
    "rouge1_f1": "ROUGE-1 F1", "rouge2_f1": "ROUGE-2 F1", "rougeL_f1": "ROUGE-L F1", "bleu": "BLEU",
    "perplexity": "perplexity (ref.)",
}


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a run (or any model) on held-out data",
                       description="Greedy answers on the eval set, scored offline: exact match, token Jaccard, "
                                   "ROUGE, BLEU, fact recall, perplexity of the references. For a run, results "
                                   "go to eval.json in its directory.")
    p.add_argument("target", help="a run (name, path or 'latest') or a model (hub id, directory, .gguf)")
    p.add_argument("--data", default=None, help="eval JSONL (default: the run's eval data)")
    p.add_argument("--baseline", action="store_true", help="also evaluate the run's base model, side by side")
    p.add_argument("--json", action="store_true", help="print eval.json's content on stdout")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--limit", type=int, default=None,
                   help="only the first N examples (with --regression: of each task)")
    p.add_argument("--examples", action="store_true", help="print every answer, not just the metrics")
    p.add_argument("--output-dir", default=None,
                   help="look for the run in this runs directory only (default: every one llm-cockpit knows)")
    p.add_argument("--regression", action="store_true",
                   help="instead: general-capability tasks (lm-evaluation-harness) on the base and the tuned "
                        "model, and what the fine-tune cost; goes to eval.json's regression section")
    p.add_argument("--tasks", default=None, metavar="T,...",
                   help="lm-eval tasks for --regression, e.g. hellaswag,arc_easy (network or HF cache); "
                        "default: the bundled offline cockpit_general")
    p.add_argument("--chat-template", action="store_true",
                   help="--regression: wrap each question in the model's chat template (default: plain text)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="the offline proof: a small model learns a language that does not exist",
                       description="Bundled model, demo DSL data, CPU preset: base answers, LoRA training, "
                                   "the same questions again, and the eval table base vs fine-tuned.")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="changes to the cpu-demo preset")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.set_defaults(func=cmd_demo)


def _progress(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def cmd_eval(args) -> int:
    from cockpit.evaluation import evaluate_run, evaluate_spec

    if args.max_new_tokens < 1 or (args.limit is not None and args.limit < 1):
        raise CockpitError("--max-new-tokens and --limit must be >= 1")
    run_dir = _as_run(args.target, args.output_dir)
    quiet = None if args.json else _progress
    if args.regression or args.tasks or args.chat_template:
        from cockpit.cli_regression import cmd_regression

        return cmd_regression(args, run_dir, quiet)
    if run_dir is not None:
        result = evaluate_run(run_dir, args.data, args.baseline, args.max_new_tokens, args.limit, quiet)
    else:
        if args.baseline:
            raise CockpitError("--baseline compares a run with its base model", "give a run, not a model")
        if not args.data:
            raise CockpitError("evaluating a model needs --data FILE", "e.g. --data data/dsl_eval.jsonl")
        result = evaluate_spec(args.target, args.data, args.max_new_tokens, args.limit, quiet)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    print_eval(result, examples=args.examples)
    if run_dir is not None:
        print(f"\nwritten: {run_dir / 'eval.json'}")
    return 0


def _as_run(target: str, output_dir: str | None) -> Path | None:
    """A run directory when ``target`` names one; None when it names a model instead."""
    from cockpit.rundir import CONFIG_FILE
    from cockpit.runs_registry import find_run

    p = Path(target)
    if p.is_dir():
        return p.resolve() if (p / CONFIG_FILE).exists() else None
    try:
        return find_run(target, output_dir)
    except CockpitError:
        if target == "latest":
            raise
        return None


def print_eval(result: dict, examples: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    tuned, base = result["finetuned"], result.get("baseline")
    table = Table(title=f"eval on {result['data']} ({tuned['metrics'].get('examples', '?')} examples)")
    table.add_column("metric")
    if base:
        table.add_column("base model", justify="right")
    table.add_column("fine-tuned" if base else tuned["model"], justify="right")
    if base:
        table.add_column("change", justify="right")
    for key, label in METRIC_LABELS.items():
        t = tuned["metrics"].get(key)
        row = [label]
        if base:
            b = base["metrics"].get(key)
            row += [_f(b), _f(t), _delta(b, t, lower_better=key == "perplexity")]
        else:
            row.append(_f(t))
        table.add_row(*row)
    console.print(table)
    if examples:
        for i, ex in enumerate(tuned["examples"]):
            console.rule(f"[{i + 1}] {ex.get('task') or ''}")
            console.print(f"[bold]Q:[/] {ex['prompt']}")
            if base:
                console.print(f"[bold]base:[/] {base['examples'][i]['answer']}")
            console.print(f"[bold]tuned:[/] {ex['answer']}")
            console.print(f"[dim]reference:[/] {ex['reference']}")


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) and v < 1000 else f"{v:.4g}"


def _delta(b, t, lower_better: bool) -> str:
    if not isinstance(b, (int, float)) or not isinstance(t, (int, float)):
        return "-"
    d = t - b
    good = d < 0 if lower_better else d > 0
    return f"[{'green' if good else 'red'}]{d:+.3f}[/]" if abs(d) < 1000 else f"{d:+.3g}"


def cmd_demo(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from cockpit.cli_train import run_foreground
    from cockpit.config import build_config, parse_overrides
    from cockpit.evaluation import evaluate_run
    from cockpit.launch import prepare_run

    console = Console()
    t0 = time.time()
    cfg = build_config("cpu-demo", None, parse_overrides(args.overrides))
    console.print("[bold]llm-cockpit demo[/]: can a 135M model learn a language that exists nowhere?\n"
                  f"1. the base model answers the probe questions  2. LoRA training on {cfg.data}\n"
                  "3. the same questions again  4. held-out evaluation, base vs fine-tuned\n")
    run_dir = prepare_run(cfg)
    console.print(f"run directory: {run_dir}")
    state = run_foreground(run_dir, resume=False)
    if state != 0:
        raise CockpitError(f"demo training did not finish (see {run_dir / 'train.log'})")
    t_train = time.time() - t0
    console.print("\n[bold]evaluating[/] the fine-tuned model and the base model on the held-out set...")
    result = evaluate_run(run_dir, baseline=True, max_new_tokens=args.max_new_tokens, progress=_progress)
    tuned, base = result["finetuned"], result["baseline"]
    probes = Table(title="the probe questions, before and after", show_lines=True)
    probes.add_column("question", ratio=2)
    probes.add_column("base model", ratio=3)
    probes.add_column("after LoRA", ratio=3)
    for b, t in list(zip(base["examples"], tuned["examples"]))[:3]:
        probes.add_row(t["prompt"], b["answer"], t["answer"])
    console.print(probes)
    print_eval(result)
    total = time.time() - t0
    gain = (tuned["metrics"].get("fact_recall") or 0) - (base["metrics"].get("fact_recall") or 0)
    console.print(f"\nfact recall {base['metrics'].get('fact_recall', 0):.2f} -> "
                  f"{tuned['metrics'].get('fact_recall', 0):.2f} ({gain:+.2f}); "
                  f"training {t_train / 60:.1f} min, total {total / 60:.1f} min; results in {run_dir / 'eval.json'}")
    return 0
