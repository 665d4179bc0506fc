"""``llm-cockpit doctor``, ``plan`` and ``calibrate``: the wizard's brain on the command line.

* ``doctor [--json]`` - GPUs, CPU, RAM, disk and library versions (never imports torch);
* ``plan MODEL ...`` - memory breakdown, fit verdict, recommended method and why, the OOM
  ladder when nothing fits, and base-vs-specialized advice. Works offline for every
  catalog model; ``--vram GB`` plans for a hypothetical GPU;
* ``calibrate ...`` - runs real training steps and prints the estimate next to the
  measured peak (``--table`` for the standard set in ``docs/calibration.md``).
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from cockpit.config import STAGES, TrainConfig
from cockpit.errors import CockpitError
from cockpit.run.registry import DEFAULT_RUNS_ROOT

_DEFAULTS = TrainConfig()
METHOD_CHOICES = ("auto", "full", "lora", "int8", "qlora")


def register(sub) -> None:
    p = sub.add_parser("doctor", help="show the hardware profile (GPUs, CPU, RAM, disk, versions)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--output-dir", default=DEFAULT_RUNS_ROOT, help="where runs go (for the free-disk check)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("plan", help="memory breakdown, fit verdict and recommended method for a model")
    p.add_argument("model", nargs="?", help="catalog name or hub id, a model directory or a .gguf file")
    p.add_argument("--method", default="auto", help="auto | full | lora | int8 | qlora (default auto)")
    p.add_argument("--batch-size", default=str(_DEFAULTS.batch_size), help="micro-batch (default %(default)s)")
    p.add_argument("--seq-len", default=str(_DEFAULTS.max_length), help="tokens per example (default %(default)s)")
    p.add_argument("--lora-r", default=str(_DEFAULTS.lora_r), help="LoRA rank (default %(default)s)")
    p.add_argument("--lora-targets", default=",".join(_DEFAULTS.lora_target_modules),
                   help="comma-separated projections that get adapters (default: all seven)")
    p.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing")
    p.add_argument("--vram", default=None, metavar="GB",
                   help="plan for a GPU with this much memory in GiB (24 for a 24 GB card) instead of this machine")
    p.add_argument("--task", default=None, help="new | extend | behaviour: what training should do (model advice)")
    p.add_argument("--stage", default="sft", choices=STAGES,
                   help="sft, or a preference stage: dpo/orpo hold chosen and rejected (2 x batch sequences), "
                        "full fine-tuning adds a reference copy (default sft)")
    p.add_argument("--list", action="store_true", help="list the catalog models and exit")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("calibrate", help="measure real training steps against the memory estimate")
    p.add_argument("--model", default="tiny", help="tiny | smollm2-135m | a model directory (default tiny)")
    p.add_argument("--method", default="lora", help="full | lora | int8 | qlora (default lora)")
    p.add_argument("--batch-size", default="1")
    p.add_argument("--seq-len", default="128")
    p.add_argument("--lora-r", default="8")
    p.add_argument("--grad-ckpt", action="store_true")
    p.add_argument("--steps", default="3", help="training steps per case (default 3)")
    p.add_argument("--stage", default="sft", choices=("sft", "dpo", "kto"),
                   help="sft, or real steps of TRL's dpo/kto trainer (batch = pairs; default sft)")
    p.add_argument("--table", action="store_true",
                   help="run the standard, held-out and preference cases of docs/calibration.md (~20 minutes on 2 cores)")
    p.add_argument("--default-malloc", action="store_true",
                   help="measure with glibc's default allocator settings instead of tune_cpu_allocator()")
    p.add_argument("--hf-loss", action="store_true",
                   help="measure transformers' loss over full logits instead of the trainer's learned-position loss")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=cmd_calibrate)


def _int(value: Any, flag: str, minimum: int = 1) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise CockpitError(f"{flag} must be a whole number, got {value!r}", f"use an integer >= {minimum}") from None
    if number < minimum:
        raise CockpitError(f"{flag} must be at least {minimum}, got {number}", f"use an integer >= {minimum}")
    return number


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def cmd_doctor(args) -> int:
    from cockpit.planning.hardware import detect_hardware, format_profile

    profile = detect_hardware(args.output_dir)
    if args.json:
        _emit_json(profile.to_dict())
    else:
        print(format_profile(profile))
    return 0


def cmd_plan(args) -> int:
    from cockpit.planning import advisor
    from cockpit.models import catalog
    from cockpit.planning.memory import ALL_LINEAR, BREAKDOWN_KEYS
    from cockpit.run.words import fmt_bytes

    if args.list:
        return _list_catalog(args.json)
    if not args.model:
        raise CockpitError("plan needs a model", "e.g. llm-cockpit plan Qwen/Qwen2.5-0.5B (see plan --list)")
    if args.method not in METHOD_CHOICES:
        raise CockpitError(f"--method must be one of {', '.join(METHOD_CHOICES)}, got {args.method!r}",
                           "auto lets the advisor choose")
    if args.task is not None and args.task not in advisor.TASKS:
        raise CockpitError(f"--task must be one of {', '.join(advisor.TASKS)}, got {args.task!r}",
                           "new: new patterns or language; extend: the model's own domain; behaviour: how it answers")
    batch = _int(args.batch_size, "--batch-size")
    seq = _int(args.seq_len, "--seq-len")
    lora_r = _int(args.lora_r, "--lora-r")
    targets = [t.strip() for t in str(args.lora_targets).split(",") if t.strip()]
    bad = [t for t in targets if t not in ALL_LINEAR]
    if bad or not targets:
        raise CockpitError(f"--lora-targets {','.join(bad) or '(empty)'} not understood",
                           f"choose among {','.join(ALL_LINEAR)}")
    spec = catalog.resolve_spec(args.model)

    gpus = 1
    if args.vram is not None:
        try:  # "24", "24G", "24GB" and "24GiB" all mean a 24 GiB card
            vram = float(re.sub(r"(?i)\s*(gib|gb|g)$", "", str(args.vram).strip()))
        except ValueError:
            vram = float("nan")
        if not math.isfinite(vram) or vram <= 0:
            raise CockpitError(f"--vram must be a positive number of GiB, got {args.vram!r}", "e.g. --vram 24")
        device, budget, where = "cuda", int(vram * 2**30), f"a {vram:g} GiB GPU (hypothetical)"
    else:
        from cockpit.planning.hardware import detect_hardware

        profile = detect_hardware()
        device, budget, gpus = profile.device, profile.training_memory_bytes, max(1, len(profile.gpus))
        where = (f"GPU 0 {profile.gpus[0].name} ({fmt_bytes(budget)} free)" if profile.gpus
                 else f"this machine's CPU ({fmt_bytes(budget)} RAM available)")

    rec = advisor.recommend(spec, budget, device, args.method, batch, seq, lora_r, targets, args.grad_ckpt,
                            gpus=gpus, stage=args.stage)
    advice = advisor.model_kind_advice(spec.id, args.task)
    # The verdict answers the question asked: an explicit method as asked; "auto" what the
    # advisor found. The recommendation (after the OOM ladder if needed) is reported beside it.
    est, fits = (rec.estimate, rec.fits) if args.method == "auto" else (rec.asked, rec.asked_fits)
    if args.json:
        _emit_json({
            "model": spec.to_dict(), "device": device, "target": where, "method": est.method,
            "total_bytes": est.total_bytes, "breakdown": est.breakdown, "fits": fits, "stage": args.stage,
            "recommended_method": rec.method, "reasons": rec.reasons + advice.reasons,
            "recommended": {**rec.settings.__dict__, "total_bytes": rec.estimate.total_bytes, "fits": rec.fits},
            "budget_bytes": rec.budget_bytes, "usable_bytes": rec.usable_bytes, "peak_phase": est.peak_phase,
            "details": est.details, "trainable_params": est.trainable_params, "candidates": rec.candidates,
            "ladder": [s.to_dict() for s in rec.ladder], "model_advice": advice.to_dict(), "notes": est.notes,
        })
        return 0
    print(_render_plan(spec, rec, est, fits, advice, where, BREAKDOWN_KEYS, fmt_bytes, args.stage))
    return 0


def _render_plan(spec, rec, est, fits, advice, where: str, keys, fmt_bytes, stage: str = "sft") -> str:
    from cockpit.planning.memory import fmt_params

    lines = [
        (f"Model    {spec.id} ({spec.source}, {spec.kind}): {fmt_params(spec.params)} parameters, "
         f"{spec.layers} layers, hidden {spec.hidden}, vocabulary {spec.vocab}"),
        f"Target   {where}",
        f"Setup    {est.method}, batch {est.batch}, {est.seq} tokens"
        + (f", stage {stage}" if stage != "sft" else "")
        + (", gradient checkpointing" if est.grad_ckpt else "") + (f", LoRA r{est.lora_r}" if est.method != "full" else ""),
        (f"Memory   {fmt_bytes(est.total_bytes)} at the peak ({est.peak_phase}); "
         f"trainable parameters {est.trainable_params:,}"),
    ]
    width = max(est.total_bytes, 1)
    for key in keys:
        value = est.breakdown[key]
        if key == "reference" and stage == "sft":
            continue
        lines.append(f"  {key.replace('_', ' '):<17} {fmt_bytes(value):>10}  {'#' * round(30 * value / width)}")
    lines.append(f"Verdict  {'fits' if fits else 'does NOT fit'}: {fmt_bytes(est.total_bytes)} of "
                 f"{fmt_bytes(rec.usable_bytes)} usable ({fmt_bytes(rec.budget_bytes)} minus 10% headroom)")
    if rec.method:
        where_model = f" on {rec.settings.model}" if rec.settings.model != spec.id else ""
        lines.append(f"Method   {rec.method} (recommended): {rec.settings.describe()}{where_model}, "
                     f"{fmt_bytes(rec.estimate.total_bytes)}")
    else:
        lines.append("Method   none fits this memory")
    lines.append("Why")
    lines.extend(f"  - {r}" for r in rec.reasons)
    if rec.ladder:
        lines.append("OOM ladder")
        for i, step in enumerate(rec.ladder, 1):
            mark = "fits" if step.fits else "too big"
            lines.append(f"  {i}. {step.action}: {fmt_bytes(step.total_bytes)} ({mark})")
    lines.append("Model choice")
    lines.extend(f"  - {r}" for r in advice.reasons)
    if advice.question:
        options = "; ".join(f"{k}: {v}" for k, v in advice.options.items())
        lines.append(f"  ? {advice.question} Re-run with --task ({options}).")
    lines.extend(f"Note     {n}" for n in est.notes)
    return "\n".join(lines)


def _list_catalog(as_json: bool) -> int:
    from cockpit.models.catalog import load_catalog

    specs = sorted(load_catalog().values(), key=lambda s: (s.family, s.params, s.id))
    if as_json:
        _emit_json([{**s.to_dict(), "aliases": list(s.aliases)} for s in specs])
        return 0
    for s in specs:
        alias = f"  ({', '.join(s.aliases)})" if s.aliases else ""
        gated = "  [gated]" if s.gated else ""
        print(f"{s.id:<40} {s.params / 1e9:>6.2f}B  {s.kind:<13}{alias}{gated}")
    return 0


def cmd_calibrate(args) -> int:
    from dataclasses import replace

    from cockpit.planning.calibrate import (
        HELDOUT_CASES,
        PREFERENCE_CASES,
        STANDARD_CASES,
        CalibrationCase,
        results_table,
        run_case,
        validate_case,
    )
    from cockpit.planning.memory import ALL_LINEAR

    if args.table:
        cases = list(STANDARD_CASES + HELDOUT_CASES + PREFERENCE_CASES)
    else:
        cases = [CalibrationCase(model=args.model, method=args.method, batch=_int(args.batch_size, "--batch-size"),
                                 seq=_int(args.seq_len, "--seq-len"), lora_r=_int(args.lora_r, "--lora-r"),
                                 grad_ckpt=args.grad_ckpt, steps=_int(args.steps, "--steps", 2), targets=ALL_LINEAR,
                                 stage=args.stage)]
    cases = [replace(c, tuned_allocator=not args.default_malloc, learned_loss=not args.hf_loss) for c in cases]
    for case in cases:
        validate_case(case)
    results = []
    for i, case in enumerate(cases, 1):
        print(f"[{i}/{len(cases)}] {case.label()} ...", file=sys.stderr, flush=True)
        results.append(run_case(case))
    if args.json:
        _emit_json([r.to_dict() for r in results])
    else:
        print(results_table(results))
    return 0
