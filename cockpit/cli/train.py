"""``train``, ``runs``, ``stop`` and ``resume``: starting and managing training runs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from cockpit.cli.console import attach_plain, echo_event, progress_printer
from cockpit.config import field_docs, parse_overrides
from cockpit.run.registry import DEFAULT_RUNS_ROOT, find_run, known_roots, list_all_runs, registry_path

# Without --output-dir a run is looked for in every runs directory llm-cockpit knows.
OUTPUT_DIR_HELP = ("look for runs in this runs directory only "
                   f"(default: {DEFAULT_RUNS_ROOT} here and every runs directory a run was started in)")


def register(sub) -> None:
    p = sub.add_parser("train", help="start a training run (detached unless --foreground)",
                       description="Start a training run. Settings: the preset, then --config, then key=value "
                                   "pairs (see --keys). Prints the run directory.")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. lr=1e-4 epochs=2")
    p.add_argument("--preset", default=None, help="a preset in presets/ (default cpu-demo) or a YAML file")
    p.add_argument("--config", default=None, help="a YAML file of key: value settings")
    p.add_argument("--foreground", action="store_true", help="train in this process and print progress")
    _add_launch_args(p, default=1)
    p.add_argument("--keys", action="store_true", help="list every config key with its meaning and exit")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config as config_used.yaml would store it, and exit")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("runs", help="list training runs with their state (of every runs directory used)")
    p.add_argument("--output-dir", default=None, help=OUTPUT_DIR_HELP)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("stop", help="stop a run gracefully (it saves a checkpoint first)")
    p.add_argument("run", nargs="?", default=None, help="run name or path (default: latest)")
    p.add_argument("--output-dir", default=None, help=OUTPUT_DIR_HELP)
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the trainer to finish stopping")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("resume", help="continue a stopped or failed run from its newest checkpoint")
    p.add_argument("run", help="run name or path")
    p.add_argument("--output-dir", default=None, help=OUTPUT_DIR_HELP)
    p.add_argument("--foreground", action="store_true")
    _add_launch_args(p, default=None)
    p.set_defaults(func=cmd_resume)


def _add_launch_args(p, default: int | None) -> None:
    same = " (default: as the run was started)" if default is None else ""
    p.add_argument("--num-processes", type=int, default=default,
                   help="data-parallel processes through accelerate launch: DDP on GPUs, gloo on a CPU" + same)
    p.add_argument("--accelerate-config", default=None, metavar="FILE",
                   help="an accelerate config (FSDP, DeepSpeed) passed to accelerate launch" + same)


def cmd_train(args) -> int:
    from cockpit.app.config import TrainRequest, build_train_config, config_used_text

    if args.keys:
        for key, doc in field_docs().items():
            print(f"{key:24} {doc}")
        return 0
    from cockpit.app import runs

    cfg = build_train_config(TrainRequest(args.preset, args.config, parse_overrides(args.overrides)))
    runs.check_layout(args.num_processes, args.accelerate_config)
    if args.dry_run:
        print(config_used_text(cfg), end="")  # what config_used.yaml would hold
        return 0
    run_dir = runs.create_run(cfg, args.num_processes, args.accelerate_config, progress=progress_printer("data"))
    if args.foreground and runs.trains_here(args.num_processes, args.accelerate_config):
        print(run_dir, flush=True)
        return runs.train_here(run_dir, echo=echo_event)
    runs.launch(run_dir, args.num_processes, args.accelerate_config)
    print(run_dir)
    if args.foreground:
        return _wait_printing(run_dir)
    print(f"training in the background; follow it with: llm-cockpit attach {run_dir.name}", file=sys.stderr)
    return 0


def _wait_printing(run_dir: Path, since: float | None = None) -> int:
    """Follow a detached run in this terminal (progress on stderr) until it ends; with
    ``since``, only what was written from then on (a resumed run's new session)."""
    return attach_plain(run_dir, out=sys.stderr, since=since)


def cmd_runs(args) -> int:
    runs = list_all_runs(args.output_dir)
    if args.json:
        print(json.dumps([{**r.__dict__, "path": str(r.path), "name": r.name, "root": str(r.path.parent)}
                          for r in runs], indent=2))
        return 0
    if not runs:
        where = (f"under {args.output_dir}" if args.output_dir is not None else
                 f"under {DEFAULT_RUNS_ROOT} here or in a runs directory remembered in {registry_path()}")
        print(f"no runs {where} yet; start one with: llm-cockpit train", file=sys.stderr)
        return 0
    by_root: dict[Path, list] = {root: [] for root in known_roots(args.output_dir)}
    for r in runs:
        by_root.setdefault(r.path.parent, []).append(r)
    by_root = {root: rows for root, rows in by_root.items() if rows}
    print(f"{'RUN':34} {'STATE':9} {'METHOD':6} {'STEP':>11} {'BEST LOSS':>9}  MODEL")
    for root, rows in by_root.items():
        if len(by_root) > 1:  # which directory each run is in, once there is more than one
            print(f"in {root}:")
        for r in rows:
            steps = f"{r.step}/{r.total_steps}" if r.total_steps else str(r.step)
            best = f"{r.best_loss:.4f}" if isinstance(r.best_loss, (int, float)) else "-"
            print(f"{r.name:34} {r.state:9} {r.method:6} {steps:>11} {best:>9}  {r.model}")
    return 0


def cmd_stop(args) -> int:
    from cockpit.app import runs

    run_dir = find_run(args.run, args.output_dir)
    state = runs.stop_run(run_dir, timeout=args.wait)
    print(f"{run_dir.name}: {'stop requested' if state in ('starting', 'running') else state}")
    return 0


def cmd_resume(args) -> int:
    from cockpit.app import runs

    run_dir = find_run(args.run, args.output_dir)
    layout = runs.resume_layout(run_dir, args.num_processes, args.accelerate_config)
    if args.foreground and runs.trains_here(*layout):
        print(run_dir, flush=True)
        return runs.train_here(run_dir, resume=True, echo=echo_event)
    resumed_at = time.time()
    pid = runs.resume_run(run_dir, *layout)
    print(run_dir)
    print(f"resumed in the background (pid {pid}); follow it with: llm-cockpit attach {run_dir.name}",
          file=sys.stderr)
    if args.foreground:
        return _wait_printing(run_dir, since=resumed_at)
    return 0
