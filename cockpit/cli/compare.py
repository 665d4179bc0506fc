"""``compare``: two or more runs side by side (settings that differ, final numbers, curves)."""

from __future__ import annotations

import json

from cockpit.errors import CockpitError


def register(sub) -> None:
    """Add the ``compare`` sub-command."""
    p = sub.add_parser(
        "compare", help="compare runs: the settings that differ, the final numbers, the loss curves",
        description="Two or more runs side by side: the settings in which their config_used.yaml differ, "
                    "the final numbers (losses, tokens/s, peak memory, steps, wall time, eval.json's metrics) "
                    "with the best of each row marked, and with --json the train and eval loss curves by step "
                    "and by tokens seen. In the cockpit: space marks runs on the runs screen, c compares them.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run names (or unique prefixes), paths, or 'latest'")
    p.add_argument("--json", action="store_true", help="print one JSON document (curves included)")
    p.add_argument("--output-dir", default=None,
                   help="look for the runs in this runs directory only (default: every one llm-cockpit knows)")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    from cockpit.evaluation.compare import compare_runs
    from cockpit.run.registry import find_run

    if len(args.runs) < 2:
        raise CockpitError("compare needs at least two runs",
                           "name two or more: llm-cockpit compare RUN RUN (list them with: llm-cockpit runs)")
    result = compare_runs([find_run(spec, args.output_dir) for spec in args.runs])
    if args.json:
        print(json.dumps(result.to_json(), indent=2, default=str))
        return 0
    print_comparison(result)
    return 0


def print_comparison(result) -> None:
    """The runs, the metrics table and the differing settings, readable at 80 columns."""
    from rich.console import Console
    from rich.table import Table

    from cockpit.evaluation.compare import HIGHER, LOWER

    console = Console(highlight=False)
    for run in result.runs:
        progress = f"{run.step}/{run.total_steps}" if run.total_steps else str(run.step)
        console.print(f"[bold]{run.letter}[/]  {run.name}  [dim]{run.method} · {run.state} · step {progress}[/]")
    console.print()
    letters = [r.letter for r in result.runs]
    console.print("[bold]final numbers[/]  [dim](* best; ↓ lower is better, ↑ higher)[/]")
    metrics = Table()
    metrics.add_column("metric")
    for letter in letters:
        metrics.add_column(letter, justify="right")
    arrows = {LOWER: " ↓", HIGHER: " ↑"}
    for row in result.metrics:
        cells = [f"[bold green]{c} *[/]" if i in row.best else f"{c}  " for i, c in enumerate(row.cells)]
        metrics.add_row(row.label + arrows.get(row.better, ""), *cells)
    console.print(metrics)
    if result.settings:
        console.print("[bold]settings that differ[/]")
        settings = Table()
        settings.add_column("setting")
        for letter in letters:
            settings.add_column(letter, overflow="fold")
        for row in result.settings:
            settings.add_row(row.key, *row.cells)
        console.print(settings)
    else:
        console.print("the runs have the same settings")
    for note in result.notes:
        console.print(f"[dim]note: {note}[/]")
    console.print("[dim]the loss curves by step and by tokens: add --json; as charts: mark runs with space "
                  "on the cockpit's runs screen, then press c[/]")
