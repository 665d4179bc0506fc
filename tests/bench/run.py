"""``make bench``: every benchmark variant back to back, a table, and a JSON file.

    python -m tests.bench.run [--steps N] [--repeats R] [--only NAMES] [--out PATH]

Variants run strictly one after the other (never two trainings at once, they would
share the cores) with the environment passed through unchanged, so thread settings
such as ``OMP_NUM_THREADS`` apply to every variant alike. A variant that fails or
times out gets a FAILED line; the others are still measured and printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.bench import settings as S
from tests.bench.measure import machine_info, probe
from tests.bench.report import aggregate, format_table, latency_verdicts, ratios
from tests.bench.variants import TRAINING_VARIANTS, Context, run_variant

LATENCY = ("first_paint", "event_to_screen")
ALIASES = {"1": "recipe_padded", "2": "recipe_dynamic", "3": "cockpit", "3a": "cockpit_learned",
           "3c": "cockpit_hf_loss",
           "4": "cockpit_tui", "5": "cockpit_ddp", "6": "cockpit_busy", "6b": "cockpit_busy_fixed",
           "a": "first_paint", "b": "event_to_screen"}
ALL = [*TRAINING_VARIANTS, *LATENCY]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.run",
                                description="Benchmark llm-cockpit against the plain recipes: every variant "
                                            "back to back, a table and a JSON file.",
                                epilog=f"names: {', '.join(ALL)} (or 1, 2, 3, 3a, 3c, 4, 5, 6, 6b, a, b)")
    p.add_argument("--steps", type=int, default=S.DEFAULT_STEPS, help="optimizer steps per training variant")
    p.add_argument("--repeats", type=int, default=1, help="runs of each training variant (medians are shown)")
    p.add_argument("--only", default="", help="comma-separated variants to run (default: all)")
    p.add_argument("--out", default=None, help="JSON output (default outputs/bench/bench-<timestamp>.json)")
    p.add_argument("--latency-repeats", type=int, default=5, help="launches / events per latency median")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds one training process may take (default 300 + 90 per step)")
    p.add_argument("--script-text", choices=("plain", "chat"), default="chat",
                   help="text layout of variants 1 and 2: the model's chat template, as the cockpit uses "
                        "for instruct models, so every variant trains on the same tokens (default), or the "
                        "workshop's prompt/newline/completion/EOS")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, run dirs) even on success")
    args = p.parse_args(argv)
    if args.steps < 1 or args.repeats < 1 or args.latency_repeats < 1:
        p.error("--steps, --repeats and --latency-repeats must be >= 1")
    wanted = [ALIASES.get(n.strip(), n.strip()) for n in args.only.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in ALL]
    if unknown:
        p.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(ALL)}")
    args.selected = [n for n in ALL if n in wanted] if wanted else list(ALL)
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    out_path = Path(args.out) if args.out else S.REPO / "outputs" / "bench" / f"bench-{stamp}.json"
    work_dir = Path(tempfile.mkdtemp(prefix=f"bench-{stamp}-"))
    training = [n for n in args.selected if n in TRAINING_VARIANTS]
    report: dict = {"created": stamp, "argv": sys.argv[1:], "steps": args.steps, "repeats": args.repeats,
                    "script_text": args.script_text,
                    "settings": _settings(), "machine": machine_info(), "work_dir": str(work_dir)}
    rows: list[dict] = []
    if training:
        try:
            found = probe(S.MODEL_ID)
        except Exception as exc:  # noqa: BLE001 - without the model no training variant can run
            print(f"error: {exc}", file=sys.stderr)
            return 1
        report["machine"].update(torch_threads=found["torch_threads"], cuda=found["cuda"], gpus=found["gpus"])
        ctx = Context(steps=args.steps, model_path=Path(found["model_path"]), work_dir=work_dir,
                      timeout=args.timeout or 300 + 90 * args.steps, script_text=args.script_text)
        report["model_path"] = str(ctx.model_path)
        for repeat in range(args.repeats):
            for name in training:
                ctx.work_dir = work_dir / f"repeat-{repeat + 1}"
                log(f"[bench] {name} (repeat {repeat + 1}/{args.repeats}, {args.steps} steps) ...")
                row = run_variant(name, ctx)
                row["repeat"] = repeat + 1
                rows.append(row)
                log(f"[bench] {name}: " + (f"{row.get('useful_tok_s')} useful tok/s, {row.get('train_s')} s loop"
                                           if row["ok"] else f"FAILED: {row['error']}"))
    variants = {name: aggregate([r for r in rows if r["name"] == name]) for name in training}
    latency = _latency(args)
    report.update(variants=variants, runs=rows, latency=latency, ratios=ratios(variants),
                  latency_checks=latency_verdicts(latency))

    print(f"\nllm-cockpit benchmark: {args.steps} steps x {args.repeats} repeat(s), "
          f"{report['machine']['cpu_count']} CPUs, torch {report['machine']['torch']}, "
          f"OMP_NUM_THREADS={report['machine']['OMP_NUM_THREADS'] or 'unset'}\n")
    print(format_table(variants, report["ratios"] if training else [], report["latency_checks"]))
    failed = any(not r["ok"] for r in rows) or any(not m.get("ok") for m in latency.values())
    if failed or args.keep:
        print(f"\nlogs and run directories kept in {work_dir}")
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
        report["work_dir"] = None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nresults: {out_path}")
    return 1 if failed else 0


def _latency(args: argparse.Namespace) -> dict:
    from tests.bench import tui_latency

    measures = {"first_paint": tui_latency.first_paint, "event_to_screen": tui_latency.event_to_screen}
    out = {}
    for name in LATENCY:
        if name not in args.selected:
            continue
        log(f"[bench] {name} ({args.latency_repeats} times) ...")
        try:
            out[name] = measures[name](args.latency_repeats)
        except Exception as exc:  # noqa: BLE001 - report it and keep the rest of the table
            out[name] = {"ok": False, "median_s": None, "values_s": [], "failures": [f"{type(exc).__name__}: {exc}"]}
        log(f"[bench] {name}: median {out[name].get('median_s')} s")
    return out


def _settings() -> dict:
    return {k: getattr(S, k) for k in ("MODEL_ID", "DATA", "SEED", "BATCH_SIZE", "GRAD_ACCUM", "LR", "LR_SCHEDULER",
                                        "WARMUP_RATIO", "WEIGHT_DECAY", "MAX_GRAD_NORM", "MAX_LENGTH", "LORA_R",
                                        "LORA_ALPHA", "LORA_DROPOUT", "LORA_TARGETS")}


if __name__ == "__main__":
    sys.exit(main())
