"""The GPU benchmark: the plain recipe against the cockpit with and without its speed switches.

    python -m tests.bench.gpu [--model ID] [--steps N] [--batch-size B] [--seq L] [--dtype bf16]
                              [--method lora|full|qlora] [--variants a,b] [--out PATH] [--dry-run]

Why a script of its own: the CPU benchmark (``tests/bench/run.py``) measures a 135M model in
fp32, where the output layer and attention cost little next to the rest. What the switches in
``cockpit/training/speedups.py`` are for (the loss only at learned positions, packing, Liger's kernels,
FlashAttention) shows on a GPU with a real architecture and a real vocabulary, so this script
builds one: a catalog model's shape (``presets/models.yaml``) with random weights, since
neither speed nor memory depends on the values, saved with the bundled tokenizer into a temp
directory that every variant trains as a local model. Nothing touches the network.

Each variant runs in its own process, one after the other, on the same data, steps and seed,
so its CUDA peak (``torch.cuda.max_memory_allocated`` / ``max_memory_reserved``, read by the
child itself at its end) is its own. The cockpit runs in a child through
``cockpit.run.launch.prepare_run`` and ``cockpit.training.trainer.TrainingRun(run_dir).execute()`` (what
``trainer_main`` does), because its ``step`` events carry the allocated peak but not the
reserved one; tokens and the loop's clock come from its ``events.jsonl`` as in the CPU
benchmark. The plain recipe is HF Trainer + PEFT with dynamic padding (``recipe_dynamic``),
rebuilt here with the GPU's dtype, batch and length, on the same chat-template text.

Without CUDA, or with ``--dry-run``, nothing is built or timed: every variant's config goes
through ``cockpit.config.build_config`` and ``cockpit.training.speedups.resolve_speedups`` for this
machine, the estimator gives its figure, and the script says why nothing was timed (exit 0
for a dry run, 2 for a real run without a GPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.bench import settings as S

GIB = 2**30
DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B"
DEFAULT_STEPS = 20
DEFAULT_BATCH = 8
DEFAULT_SEQ = 1024
DEFAULT_WARMUP_STEPS = 2
DEFAULT_TIMEOUT_S = 1800.0
DTYPES = {"bf16": "bf16", "fp16": "fp16", "fp32": "fp32"}
METHODS = ("lora", "full", "qlora")
# A LoRA learning rate that a random model survives for 20 steps; full fine-tuning takes a smaller one.
LR = {"lora": 2e-4, "qlora": 2e-4, "full": 2e-5}

# name -> (what it is, the cockpit settings it runs with). ``plain`` is not the cockpit: its
# settings only describe it to the planner and the estimator (transformers' loss, padding, SDPA).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "plain": ("HF Trainer + PEFT, dynamic padding",
              {"learned_loss": False, "packing": "false", "attn": "sdpa", "kernels": "none"}),
    "cockpit_hf_loss": ("cockpit, transformers' loss, padded",
                        {"learned_loss": False, "packing": "false", "attn": "sdpa", "kernels": "none"}),
    "cockpit_learned": ("cockpit, loss only where learned, padded",
                        {"learned_loss": True, "packing": "false", "attn": "sdpa", "kernels": "none"}),
    "cockpit_packed": ("cockpit, learned loss + packing",
                       {"learned_loss": True, "packing": "true", "attn": "auto", "kernels": "none"}),
    "cockpit_liger": ("cockpit, learned + packing + Liger",
                      {"learned_loss": True, "packing": "true", "attn": "auto", "kernels": "liger"}),
    "cockpit_flash": ("cockpit, learned + packing + FlashAttention 2",
                      {"learned_loss": True, "packing": "true", "attn": "flash_attention_2", "kernels": "none"}),
}

# Common words that the bundled tokenizer keeps whole (about one token each with their space),
# so a target length in words is close to one in tokens.
WORDS = ("the of and to in is that for it as with was on be by this are from at or an have not which "
         "but all they one can their has more will when there been if would some what out about into "
         "than them only other time new these two may first any like then now such over also most made "
         "after many where well through much before must back years way even because good those each "
         "people could work part used very being under same while last might great old year off come "
         "since against few long small large point data model value number system order group world "
         "state place case hand fact line name water form house light school").split()


# -- the architecture -------------------------------------------------------------------
def catalog_spec(model_id: str):
    """The catalog's :class:`~cockpit.models.catalog.ModelSpec` for ``model_id`` (an id or alias)."""
    from cockpit.models.catalog import load_catalog, lookup
    from cockpit.errors import CockpitError

    spec = lookup(model_id)
    if spec is None:
        raise CockpitError(f"{model_id!r} is not in the model catalog",
                           f"choose one of {', '.join(load_catalog())}")
    return spec


def tokenizer_length() -> int:
    """How many tokens the bundled tokenizer has (``len(tokenizer)``), read from its
    ``tokenizer.json`` with the ``tokenizers`` library: no transformers import, no model."""
    from tokenizers import Tokenizer

    from cockpit.models.sources import bundled_tokenizer_dir

    return Tokenizer.from_file(str(bundled_tokenizer_dir() / "tokenizer.json")).get_vocab_size(with_added_tokens=True)


def planning_spec(spec, n_tokens: int):
    """The spec of the model that is built, and a line saying what happened to its vocabulary.

    The architecture's vocabulary is kept when the tokenizer's ids fit in it (every catalog
    model's does): the output layer then costs what it costs in the real model, which is what
    the learned-position loss is about. A smaller one grows to the tokenizer's length.
    """
    if spec.vocab >= n_tokens:
        return spec, (f"vocabulary: the architecture's {spec.vocab:,} rows kept (the bundled tokenizer has "
                      f"{n_tokens:,} tokens; its ids fit, the other rows are never used as inputs)")
    grown = dataclasses.replace(spec, vocab=n_tokens,
                                params=spec.params + (n_tokens - spec.vocab) * spec.hidden * (1 if spec.tied else 2))
    return grown, (f"vocabulary: set to the bundled tokenizer's {n_tokens:,} tokens "
                   f"(the architecture has {spec.vocab:,})")


def arch_config(spec, seq: int) -> dict[str, Any]:
    """The transformers config (``AutoConfig.for_model`` keyword arguments plus ``model_type``)
    of ``spec``'s shape. The catalog has the shapes, not the configs; what it lacks that matters
    for the planner (Gemma 2's soft-capping) is its published value, the rest stays at the
    family's defaults (RoPE settings change neither speed nor memory)."""
    config: dict[str, Any] = {
        "model_type": spec.arch, "vocab_size": spec.vocab, "hidden_size": spec.hidden,
        "intermediate_size": spec.intermediate, "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads, "num_key_value_heads": spec.kv_heads, "head_dim": spec.head_dim,
        "tie_word_embeddings": spec.tied, "max_position_embeddings": max(4096, seq),
    }
    if spec.arch == "mistral":
        config["sliding_window"] = None  # Mistral 7B v0.3 attends to the whole context
    if spec.arch == "gemma2":
        config.update(final_logit_softcapping=30.0, attn_logit_softcapping=50.0,
                      query_pre_attn_scalar=spec.head_dim, sliding_window=4096)
    return config


# -- the plan: every variant's config, speed-ups and estimate, without a model -----------
def shared_overrides(args: argparse.Namespace, model_dir: Path, data: Path, runs: Path) -> dict[str, Any]:
    """The cockpit settings every variant shares (the CPU benchmark's setup, sized for a GPU):
    no evaluation, no checkpoint inside the loop, one one-token probe answer."""
    return {
        "model": str(model_dir), "data": str(data), "eval_data": "", "eval_split": 0, "eval_steps": 0,
        "method": args.method, "max_steps": args.steps, "batch_size": args.batch_size, "grad_accum": 1,
        "lr": LR[args.method], "lr_scheduler": S.LR_SCHEDULER, "warmup_ratio": S.WARMUP_RATIO,
        "weight_decay": S.WEIGHT_DECAY, "max_grad_norm": S.MAX_GRAD_NORM, "max_length": args.seq,
        "lora_r": S.LORA_R, "lora_alpha": S.LORA_ALPHA, "lora_dropout": S.LORA_DROPOUT,
        "lora_target_modules": list(S.LORA_TARGETS), "grad_ckpt": False, "precision": DTYPES[args.dtype],
        "save_steps": 10**9, "logging_steps": 1, "sample_every": 0, "sample_count": 1, "sample_max_new_tokens": 1,
        "early_stopping_patience": 0, "seed": S.SEED, "output_dir": str(runs),
    }


def quiet_precision(cfg):
    """``cockpit.training.recipe.pick_precision`` (device and dtype the trainer would use here) without
    its per-call warning that a CPU trains in fp32: the plan says that once."""
    from cockpit.training.recipe import pick_precision

    logger = logging.getLogger("cockpit.training.recipe")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return pick_precision(cfg)
    finally:
        logger.setLevel(level)


def estimate(cfg, spec) -> dict[str, Any]:
    """The estimator's peak for ``cfg`` on a CUDA GPU, with the arguments
    ``cockpit.planning.memory.estimate_for_config`` passes, on the spec actually built (whose vocabulary
    may differ from the catalog's). Always CUDA: that is what the measurements compare with."""
    from cockpit.planning.memory import ALL_LINEAR, estimate_memory

    precision = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}.get(cfg.precision, "auto")
    est = estimate_memory(spec, cfg.method, cfg.batch_size, cfg.max_length, cfg.lora_r,
                          targets=[t for t in cfg.lora_target_modules if t in ALL_LINEAR] or None,
                          grad_ckpt=cfg.grad_ckpt, device="cuda", precision=precision, lora_dropout=cfg.lora_dropout,
                          learned_loss=cfg.learned_loss)
    return {"total_gib": round(est.total_gib, 3), "peak_phase": est.peak_phase,
            "breakdown_gib": {k: round(v / GIB, 3) for k, v in est.breakdown.items()}}


def make_plan(args: argparse.Namespace, spec, model_config: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    """One entry per variant: its settings, what ``resolve_speedups`` gives it on this machine
    (or the one-line reason it refuses), and the estimator's figure."""
    from cockpit.config import build_config
    from cockpit.errors import CockpitError
    from cockpit.training.speedups import resolve_speedups

    shared = shared_overrides(args, work / "model", work / "data.jsonl", work / "runs")
    namespace = SimpleNamespace(**model_config)
    plan = []
    for name in args.selected:
        label, settings = VARIANTS[name]
        entry: dict[str, Any] = {"name": name, "label": label, "settings": settings}
        try:
            cfg = build_config(None, None, {**shared, **settings, "output_dir": str(work / "runs" / name),
                                            "run_name": f"bench-{name}"})
            precision = quiet_precision(cfg)
            entry.update(device=precision.device, dtype=precision.dtype_name)
            entry["estimate"] = estimate(cfg, spec)
            if cfg.method in ("int8", "qlora"):
                from cockpit.training.recipe import _require_bitsandbytes

                _require_bitsandbytes(cfg.method)  # the trainer's own check, its own line
            speedups = resolve_speedups(cfg, model_config["model_type"], precision.device, precision.dtype_name,
                                        namespace)
        except CockpitError as exc:
            entry.update(status="refused", reason=exc.one_line())
        else:
            if name == "plain":  # the plain recipe never uses Liger, whatever kernels=auto would pick
                speedups = dataclasses.replace(speedups, liger=False)
            uses = speedups.summary() + (" (HF Trainer + PEFT, not the cockpit)" if name == "plain" else "")
            entry.update(status="planned", uses=uses, notes=list(speedups.notes))
        plan.append(entry)
    return plan


def print_plan(args, spec, vocab_line: str, plan: list[dict[str, Any]], torch_info: dict[str, Any]) -> None:
    where = plan[0] if plan else {}
    print(f"GPU benchmark: {spec.id} ({spec.arch}, {spec.params / 1e9:.2f}B parameters, {spec.layers} layers, "
          f"hidden {spec.hidden}, random weights), {args.method}, {args.dtype}, batch {args.batch_size}, "
          f"max length {args.seq}, {args.steps} steps")
    print(vocab_line)
    print(f"this machine: {torch_info['summary']}; speed-ups resolved for {where.get('device', '?')} in "
          f"{where.get('dtype', '?')} (the trainer's choice here); estimates for a CUDA GPU in {args.dtype}")
    width = max(len(e["name"]) for e in plan) if plan else 8
    for e in plan:
        est = e.get("estimate", {}).get("total_gib")
        est_text = f"estimate {est:6.2f} GiB" if est is not None else "estimate    -    "
        what = f"uses {e['uses']}" if e["status"] == "planned" else f"refused: {e['reason']}"
        print(f"  {e['name']:<{width}}  {est_text}  {what}")
        for note in e.get("notes", []):
            print(f"  {'':<{width}}  {'':<21}  note: {note}")


def torch_summary() -> dict[str, Any]:
    """Whether torch sees a CUDA device, without creating a CUDA context in this process
    (``is_available`` does not; the device's name comes from the build child)."""
    import torch

    cuda = torch.cuda.is_available()
    count = torch.cuda.device_count() if cuda else 0
    summary = f"torch {torch.__version__}, " + (f"{count} CUDA device(s)" if cuda else "no CUDA device")
    return {"cuda": cuda, "devices": count, "torch": torch.__version__, "torch_cuda": torch.version.cuda,
            "summary": summary}


# -- synthetic data ---------------------------------------------------------------------
def write_data(path: Path, rows: int, seq: int, seed: int) -> None:
    """Prompt/completion pairs of realistic, uneven lengths: totals drawn log-normally around a
    quarter of the max length (a long tail up to just under it, few truncated), the prompt
    10-60% of each, so dynamic padding wastes what it wastes on real instruction data."""
    rng = random.Random(seed)
    budget = max(32, seq - 64)  # room for the chat template's system prompt and role headers
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(rows):
            total = int(min(budget, max(24, rng.lognormvariate(math.log(seq / 4), 0.75))))
            prompt_words = max(4, int(total * rng.uniform(0.1, 0.6) / 1.15))
            answer_words = max(4, int(total / 1.15) - prompt_words)
            prompt = f"Question {i}: " + " ".join(rng.choice(WORDS) for _ in range(prompt_words)) + "?"
            answer = " ".join(rng.choice(WORDS) for _ in range(answer_words)) + "."
            fh.write(json.dumps({"prompt": prompt, "completion": answer}) + "\n")


# -- the children -----------------------------------------------------------------------
def child_build(job: dict[str, Any]) -> dict[str, Any]:
    """Build the random model from its config, save it with the bundled tokenizer, and measure
    the data's token lengths as the plain recipe tokenizes them."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from tests.bench.recipe_common import texts

    tok = AutoTokenizer.from_pretrained(job["tokenizer"])
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    kwargs = dict(job["config"])
    model_type = kwargs.pop("model_type")
    config = AutoConfig.for_model(model_type, **kwargs, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                  pad_token_id=tok.pad_token_id)
    torch.manual_seed(job["seed"])
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, job["dtype"]))
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(job["model_dir"])
    tok.save_pretrained(job["model_dir"])
    build_s = time.perf_counter() - t0
    lengths = []
    with open(job["data"], encoding="utf-8") as fh:
        for line in fh:
            lengths.append(len(tok(texts(tok, json.loads(line), "chat")[1])["input_ids"]))
    gpu: dict[str, Any] = {}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = {"name": props.name, "total_gib": round(props.total_memory / GIB, 2),
               "capability": f"{props.major}.{props.minor}", "count": torch.cuda.device_count()}
    return {"params": params, "build_s": round(build_s, 1), "tokenizer_len": len(tok), "gpu": gpu,
            "model_class": type(model).__name__,
            "lengths": {"examples": len(lengths), "mean": round(statistics.mean(lengths), 1),
                        "median": statistics.median(lengths), "p90": sorted(lengths)[int(0.9 * (len(lengths) - 1))],
                        "max": max(lengths), "over_max_length": sum(n > job["seq"] for n in lengths)}}


def cuda_peaks() -> dict[str, Any]:
    """This process's CUDA high-water marks, and the device's used memory now (context,
    cache and anything else on the GPU: what nvidia-smi would show)."""
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    return {"peak_allocated": int(torch.cuda.max_memory_allocated()),
            "peak_reserved": int(torch.cuda.max_memory_reserved()),
            "device_used_at_end": int(total - free)}


def child_plain(job: dict[str, Any]) -> dict[str, Any]:
    """The plain recipe on the GPU: ``recipe_dynamic`` (HF Trainer + PEFT, ``DataCollatorForSeq2Seq``
    padding each batch to its longest example) with the benchmark's dtype, batch, length and
    method, the text through the chat template as the cockpit builds it, and the loop timed per
    logged step on the cockpit's clock (``on_train_begin`` to each step's log)."""
    import torch
    import transformers
    from datasets import load_dataset
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainerCallback,
                              TrainingArguments)

    from tests.bench.recipe_common import TokenMeter, make_tokenize

    transformers.set_seed(job["seed"])
    tok = AutoTokenizer.from_pretrained(job["model_dir"])
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token

    dataset = load_dataset("json", data_files=job["data"], split="train")
    dataset = dataset.map(make_tokenize(tok, False, "chat", job["seq"]), remove_columns=dataset.column_names)

    dtype = getattr(torch, job["dtype_name"])
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": "sdpa"}
    if job["method"] == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(job["model_dir"], **kwargs)
    model.config.use_cache = False
    if job["method"] == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if job["method"] != "full":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=S.LORA_R, lora_alpha=S.LORA_ALPHA, lora_dropout=S.LORA_DROPOUT,
                                                 target_modules=S.LORA_TARGETS, task_type="CAUSAL_LM", bias="none"))
    meter = TokenMeter()
    meter.attach(model)

    class StepClock(TrainerCallback):
        """Each logged step: seconds since the loop began, useful and padded tokens so far, loss."""

        def __init__(self) -> None:
            self.t0 = 0.0
            self.steps: list[dict[str, Any]] = []

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.time()

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.steps.append({"step": state.global_step, "elapsed_s": round(time.time() - self.t0, 4),
                                   "tokens": meter.useful, "seen": meter.seen, "loss": float(logs["loss"])})

    clock = StepClock()
    training_args = TrainingArguments(
        output_dir=job["output_dir"], per_device_train_batch_size=job["batch_size"], gradient_accumulation_steps=1,
        learning_rate=job["lr"], max_steps=job["steps"], warmup_steps=S.WARMUP_RATIO,
        lr_scheduler_type=S.LR_SCHEDULER, weight_decay=S.WEIGHT_DECAY, max_grad_norm=S.MAX_GRAD_NORM,
        logging_steps=1, save_strategy="no", eval_strategy="no", report_to="none", seed=job["seed"],
        data_seed=job["seed"], bf16=job["bf16"], fp16=job["fp16"], disable_tqdm=True, dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=dataset, processing_class=tok, callbacks=[clock],
                      data_collator=DataCollatorForSeq2Seq(tok, padding="longest", label_pad_token_id=-100))
    trainer.train()
    return {"state": "finished", "step_log": clock.steps, **cuda_peaks()}


def child_cockpit(job: dict[str, Any]) -> dict[str, Any]:
    """The cockpit as ``trainer_main`` runs it, in this process so that its CUDA peaks can be read
    at the end; a start the cockpit refuses (``CockpitError`` before the run exists) is a skip."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from cockpit.config import build_config
    from cockpit.errors import CockpitError
    from cockpit.run.launch import prepare_run

    try:
        run_dir = prepare_run(build_config(None, None, job["overrides"]))
    except CockpitError as exc:
        return {"state": "refused", "skipped": exc.one_line()}
    from cockpit.training.trainer import TrainingRun

    state = TrainingRun(run_dir).execute()
    return {"state": state, "run_dir": str(run_dir), **cuda_peaks()}


CHILDREN = {"build": child_build, "plain": child_plain, "cockpit": child_cockpit}


def run_child(kind: str, job: dict[str, Any], log_dir: Path, timeout: float) -> tuple[dict[str, Any] | None, dict]:
    """``python -m tests.bench.gpu --child KIND JOB``, measured (wall time, exit code); returns
    the child's result (None when it wrote none) and the process fields."""
    from tests.bench.measure import run_measured, tail

    log_dir.mkdir(parents=True, exist_ok=True)
    job_path, result_path = log_dir / f"{kind}-job.json", log_dir / f"{kind}-result.json"
    job_path.write_text(json.dumps({**job, "result": str(result_path)}, indent=2), encoding="utf-8")
    proc = run_measured([sys.executable, "-m", "tests.bench.gpu", "--child", kind, str(job_path)], log_dir=log_dir,
                        name=kind, timeout=timeout)
    fields: dict[str, Any] = {"process_s": round(proc.wall_s, 1), "returncode": proc.returncode,
                              "log": str(log_dir / f"{kind}.stderr")}
    if proc.timed_out:
        fields["error"] = f"{kind} timed out after {timeout:.0f} s"
    elif proc.returncode != 0:
        fields["error"] = f"{kind} exited with {proc.returncode}: {tail(log_dir / f'{kind}.stderr')[-400:]}"
    result = json.loads(result_path.read_text(encoding="utf-8")) if result_path.exists() else None
    return result, fields


def child_main(kind: str, job_path: str) -> int:
    """In the child: run ``kind`` on the job and write its result where the job says."""
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    result = CHILDREN[kind](job)
    Path(job["result"]).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


# -- the measurements -------------------------------------------------------------------
def rates(points: list[tuple[float, int]], warmup: int) -> tuple[float | None, float | None]:
    """``(steady, whole)`` useful tokens/s from ``(elapsed_s, tokens so far)`` per logged step:
    ``whole`` over the loop, ``steady`` after the first ``warmup`` steps (kernel compilation,
    Triton autotuning and cuBLAS's first calls land there, not in the speed of training)."""
    if not points or points[-1][0] <= 0:
        return None, None
    whole = points[-1][1] / points[-1][0]
    if warmup <= 0 or len(points) <= warmup:
        return round(whole, 1), round(whole, 1)
    t0, n0 = points[warmup - 1]
    dt = points[-1][0] - t0
    return (round((points[-1][1] - n0) / dt, 1) if dt > 0 else None), round(whole, 1)


def from_events(run_dir: Path) -> dict[str, Any]:
    """Steps, tokens, clock, losses, the allocated peak each step reported and what the run said
    it used (its info line), from the run's ``events.jsonl``."""
    from cockpit.run import events as ev
    events = ev.read_events(run_dir / "events.jsonl")
    steps = [e for e in events if isinstance(e, ev.Step)]
    infos = [e.message for e in events if isinstance(e, ev.Warning) and e.kind == "info"]
    errors = [e.message + (f" -> {e.advice}" if e.advice else "") for e in events if isinstance(e, ev.Error)]
    started = [e for e in events if isinstance(e, ev.RunStarted)]
    out: dict[str, Any] = {
        "step_log": [{"step": e.step, "elapsed_s": e.elapsed_s, "tokens": e.tokens or 0, "loss": e.loss}
                     for e in steps],
        "info": infos,
    }
    peaks = [d.get("peak") for e in steps for d in (e.mem or []) if isinstance(d, dict)
             and str(d.get("device", "")).startswith("cuda") and d.get("peak")]
    out["event_peak_allocated"] = max(peaks) if peaks else None
    summary = next((m.rsplit("; ", 1)[-1] for m in infos if "; " in m and m.split(":", 1)[0] in METHODS), None)
    if summary:
        out["uses_actual"] = summary
    if started and started[-1].estimate:
        out["cockpit_estimate_gib"] = round(started[-1].estimate.get("total_bytes", 0) / GIB, 3)
    if errors:
        out["error"] = f"the run failed: {errors[-1]}"
    return out


def measure_variant(entry: dict[str, Any], args, shared: dict[str, Any], work: Path,
                    dtype: dict[str, Any]) -> dict[str, Any]:
    """One variant in its own process; every failure becomes an ``error`` field of its row."""
    name = entry["name"]
    row: dict[str, Any] = {"name": name, "label": entry["label"], "uses": entry.get("uses"),
                           "estimate_gib": entry.get("estimate", {}).get("total_gib")}
    if entry["status"] == "refused":
        return {**row, "skipped": entry["reason"]}
    log_dir = work / name
    if name == "plain":
        job = {"model_dir": shared["model"], "data": shared["data"], "seq": args.seq, "batch_size": args.batch_size,
               "steps": args.steps, "lr": LR[args.method], "method": args.method, "seed": S.SEED,
               "output_dir": str(log_dir / "trainer"), **dtype}
        result, fields = run_child("plain", job, log_dir, args.timeout)
    else:
        overrides = {**shared, **entry["settings"], "output_dir": str(work / "runs" / name),
                     "run_name": f"bench-{name}"}
        result, fields = run_child("cockpit", {"overrides": overrides}, log_dir, args.timeout)
        if result and result.get("skipped"):
            return {**row, "skipped": result["skipped"]}
        if result and result.get("run_dir"):
            row["run_dir"] = result["run_dir"]
            result = {**result, **from_events(Path(result["run_dir"]))}
    row.update(fields)
    if result is None:
        row.setdefault("error", "the child wrote no result")
        return row
    log = result.get("step_log", [])
    steady, whole = rates([(s["elapsed_s"], s["tokens"]) for s in log], args.warmup_steps)
    row.update(steps=len(log), useful_tokens=log[-1]["tokens"] if log else None,
               train_s=log[-1]["elapsed_s"] if log else None, useful_tok_s=steady, useful_tok_s_whole_loop=whole,
               final_loss=log[-1]["loss"] if log else None, losses=[s["loss"] for s in log])
    if log and "seen" in log[-1]:
        row["seen_tokens"] = log[-1]["seen"]
        row["padding_share"] = round(1 - log[-1]["tokens"] / log[-1]["seen"], 3) if log[-1]["seen"] else None
    for key in ("uses_actual", "info", "cockpit_estimate_gib"):
        if key in result:
            row[key] = result[key]
    for key in ("peak_allocated", "peak_reserved", "device_used_at_end", "event_peak_allocated"):
        if result.get(key):
            row[f"{key}_gib"] = round(result[key] / GIB, 3)
    est = row.get("estimate_gib")
    if est and row.get("peak_reserved_gib"):
        row["estimate_vs_reserved"] = round(est / row["peak_reserved_gib"], 2)
    if est and row.get("peak_allocated_gib"):
        row["estimate_vs_allocated"] = round(est / row["peak_allocated_gib"], 2)
    if result.get("error") and not row.get("error"):
        row["error"] = result["error"]
    if result.get("state") not in ("finished", None) and not row.get("error"):
        row["error"] = f"the run ended {result['state']}"
    if not row.get("error") and len(log) != args.steps:
        row["error"] = f"trained {len(log)} steps, expected {args.steps}"
    return row


def format_table(rows: list[dict[str, Any]]) -> str:
    """The table: one line per variant; a skipped or failed one says why instead of numbers."""
    head = ("variant", "useful tok/s", "ratio vs plain", "peak allocated GiB", "peak reserved GiB", "estimate GiB",
            "estimate/measured", "final loss")
    width = max([len(head[0])] + [len(r["name"]) for r in rows])
    lines = [f"{head[0]:<{width}}  " + "  ".join(f"{h:>{max(len(h), 9)}}" for h in head[1:])]

    def num(value, fmt: str, suffix: str = "") -> str:
        return "-" if value is None else format(value, fmt) + suffix

    for r in rows:
        if r.get("skipped") or r.get("error"):
            why = f"skipped: {r['skipped']}" if r.get("skipped") else f"FAILED: {r['error']}"
            lines.append(f"{r['name']:<{width}}  {why}")
            continue
        cells = (num(r.get("useful_tok_s"), ",.0f"), num(r.get("ratio_vs_plain"), ".2f", "x"),
                 num(r.get("peak_allocated_gib"), ".2f"), num(r.get("peak_reserved_gib"), ".2f"),
                 num(r.get("estimate_gib"), ".2f"), num(r.get("estimate_vs_reserved"), ".2f", "x"),
                 num(r.get("final_loss"), ".4f"))
        lines.append(f"{r['name']:<{width}}  " + "  ".join(f"{c:>{max(len(h), 9)}}" for c, h in zip(cells, head[1:])))
    return "\n".join(lines)


def package_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for pkg in ("torch", "transformers", "peft", "accelerate", "liger-kernel", "flash-attn", "bitsandbytes", "triton"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")


# -- the command line -------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.gpu",
        description="Time the plain recipe (HF Trainer + PEFT, dynamic padding) against the cockpit with and "
                    "without its speed switches on a CUDA GPU, on a catalog architecture with random weights.",
        epilog=f"variants: {', '.join(VARIANTS)}")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"a catalog id or alias (default {DEFAULT_MODEL})")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"optimizer steps per variant ({DEFAULT_STEPS})")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help=f"examples per step ({DEFAULT_BATCH})")
    p.add_argument("--seq", type=int, default=DEFAULT_SEQ, help=f"max length in tokens ({DEFAULT_SEQ})")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="bf16", help="training precision (bf16)")
    p.add_argument("--method", choices=METHODS, default="lora", help="lora (default), full, or qlora (bitsandbytes)")
    p.add_argument("--variants", default="", help="comma-separated variants to run (default: all)")
    p.add_argument("--out", default=None, help="JSON output (default outputs/bench/gpu-<timestamp>.json; "
                                               "a dry run writes one only when given)")
    p.add_argument("--dry-run", action="store_true", help="plan only: configs, speed-ups, estimates; nothing built")
    p.add_argument("--warmup-steps", type=int, default=DEFAULT_WARMUP_STEPS,
                   help=f"first steps left out of the tok/s column ({DEFAULT_WARMUP_STEPS}; 0: the whole loop)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds one variant's process may take")
    p.add_argument("--keep", action="store_true", help="keep the work directory (model, data, logs, run dirs)")
    p.add_argument("--child", nargs=2, metavar=("KIND", "JOB"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return args
    if min(args.steps, args.batch_size, args.seq) < 1 or args.warmup_steps < 0:
        p.error("--steps, --batch-size and --seq must be >= 1, --warmup-steps >= 0")
    wanted = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    args.selected = list(dict.fromkeys(wanted)) if wanted else list(VARIANTS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(*args.child)
    from cockpit.errors import CockpitError

    try:
        spec, vocab_line = planning_spec(catalog_spec(args.model), tokenizer_length())
    except CockpitError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 1
    model_config = arch_config(spec, args.seq)
    info = torch_summary()
    timing = info["cuda"] and not args.dry_run
    # A real run works in a fresh directory; a plan only names the paths it would use.
    if timing:
        work = Path(tempfile.mkdtemp(prefix="cockpit-gpu-bench-"))
    else:
        work = Path(tempfile.gettempdir()) / "cockpit-gpu-bench"
    plan = make_plan(args, spec, model_config, work)
    print_plan(args, spec, vocab_line, plan, info)
    from tests.bench.measure import machine_info

    report: dict[str, Any] = {
        "machine": {**machine_info(), "packages": package_versions(), "torch_cuda": info["torch_cuda"],
                    "cuda_devices": info["devices"]},
        "settings": {"model": spec.id, "arch": spec.arch, "params": spec.params, "vocab": spec.vocab,
                     "vocab_note": vocab_line, "method": args.method, "dtype": args.dtype, "steps": args.steps,
                     "batch_size": args.batch_size, "seq": args.seq, "warmup_steps": args.warmup_steps,
                     "lr": LR[args.method], "seed": S.SEED, "lora_r": S.LORA_R, "lora_alpha": S.LORA_ALPHA,
                     "model_config": model_config},
        "plan": plan,
    }
    if not timing:
        line = ("dry run: nothing was built or timed" if info["cuda"]
                else f"no CUDA device is present ({info['summary']}): nothing was timed")
        report["timed"] = False
        report["reason"] = line
        if args.out:
            write_json(Path(args.out), report)
        print(line)
        return 0 if args.dry_run else 2
    return run_benchmark(args, spec, model_config, plan, work, report)


def run_benchmark(args, spec, model_config: dict[str, Any], plan: list[dict[str, Any]], work: Path,
                  report: dict[str, Any]) -> int:
    """Build the model and the data, run every planned variant, print the table, write the JSON."""
    from cockpit.models.sources import bundled_tokenizer_dir

    out = Path(args.out) if args.out else S.REPO / "outputs" / "bench" / f"gpu-{time.strftime('%Y%m%d-%H%M%S')}.json"
    report.update(timed=True, work_dir=str(work), variants=[])
    if not any(e["status"] == "planned" for e in plan):
        report["variants"] = [measure_variant(e, args, {}, work, {}) for e in plan]
        print(format_table(report["variants"]))
        print("every variant was refused: nothing to time")
        write_json(out, report)
        shutil.rmtree(work, ignore_errors=True)
        return 0
    # The children never touch the network, and keep their runs registry and tokenized data here.
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                      TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1", LLM_COCKPIT_HOME=str(work / "state"),
                      LLM_COCKPIT_DATA_CACHE=str(work / "tokenized"))
    shared = shared_overrides(args, work / "model", work / "data.jsonl", work / "runs")
    write_data(work / "data.jsonl", args.steps * args.batch_size, args.seq, S.SEED)
    print(f"building the model in {work / 'model'} ...", flush=True)
    built, fields = run_child("build", {"tokenizer": str(bundled_tokenizer_dir()), "config": model_config,
                                        "dtype": spec.dtype, "seed": S.SEED, "model_dir": shared["model"],
                                        "data": shared["data"], "seq": args.seq}, work / "build", args.timeout)
    report["build"] = {**(built or {}), **fields}
    if built is None or fields.get("error"):
        print(f"FAILED to build the model: {fields.get('error', 'no result')} (work directory kept: {work})")
        write_json(out, report)
        return 1
    lengths, gpu = built["lengths"], built.get("gpu") or {}
    print(f"GPU: {gpu.get('name', '?')} ({gpu.get('total_gib', '?')} GiB); model {built['model_class']} with "
          f"{built['params']:,} parameters, built in {built['build_s']} s")
    print(f"data: {lengths['examples']} examples, tokens each (chat template) mean {lengths['mean']}, median "
          f"{lengths['median']}, p90 {lengths['p90']}, max {lengths['max']}; {lengths['over_max_length']} over "
          f"max length {args.seq} (truncated)")
    report["machine"]["gpu"] = gpu
    # The plain recipe loads the model as the cockpit would (pick_precision on this machine).
    first = next((e for e in plan if e.get("dtype")), {"dtype": "bfloat16"})
    dtype = {"dtype_name": first["dtype"], "bf16": args.dtype == "bf16", "fp16": args.dtype == "fp16"}
    rows: list[dict[str, Any]] = []
    for entry in plan:
        print(f"running {entry['name']} ...", flush=True)
        rows.append(measure_variant(entry, args, shared, work, dtype))
        report["variants"] = rows
        write_json(out, report)  # after every variant: a crash later keeps what was measured
    base = next((r.get("useful_tok_s") for r in rows if r["name"] == "plain" and not r.get("error")), None)
    for r in rows:
        if base and r.get("useful_tok_s"):
            r["ratio_vs_plain"] = round(r["useful_tok_s"] / base, 2)
    print()
    print(format_table(rows))
    print(f"useful tok/s: non-padding tokens / loop seconds after the first {args.warmup_steps} steps; "
          "estimate/measured: the estimate / peak reserved (the estimate also counts ~0.8 GiB of CUDA context)")
    for r in rows:
        if r.get("uses_actual") or r.get("uses"):
            print(f"  {r['name']}: {r.get('uses_actual') or r.get('uses')}")
    failed = [r for r in rows if r.get("error")]
    write_json(out, report)
    print(f"wrote {out}")
    if failed or args.keep:
        print(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
