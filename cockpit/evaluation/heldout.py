"""Evaluation of a fine-tuned run against its base model on held-out examples.

Each example is answered greedily by :func:`cockpit.models.generate.generate` (the same code the
training samples use) and scored with the offline metrics of :mod:`cockpit.evaluation.metrics`
against the reference answer: exact match, token Jaccard, ROUGE-1/2/L, BLEU, fact recall
(the share of the example's ``must_include`` items present). Perplexity is computed on
the reference answers themselves: exp of the mean cross-entropy over the answer tokens
(prompt tokens masked exactly as in training), pooled over all examples.

Results go to ``eval.json`` in the run directory (written atomically)::

    {"version": 1, "created": <unix time>, "data": <path>, "max_new_tokens": N,
     "finetuned": {"model": <what>, "metrics": {...}, "examples": [{"prompt", "reference",
                   "answer", "task", "must_include", "scores": {...}}, ...]},
     "baseline": {... same shape ...} | null}

Sections other commands wrote there (``regression``, from ``eval --regression``) are kept.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cockpit.config import TrainConfig
from cockpit.errors import CockpitError
from cockpit.run_config import load_run_config
from cockpit.run.atomic import atomic_write_json

log = logging.getLogger(__name__)
EVAL_FILE = "eval.json"
METRIC_ORDER = ("fact_recall", "exact_match", "token_jaccard", "rouge1_f1", "rougeL_f1", "bleu", "perplexity")


@dataclass
class ModelReport:
    """One model's answers and scores on the eval set."""

    model: str
    metrics: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "metrics": self.metrics, "examples": self.examples}


def load_inference_model(spec: str, adapter: Path | None = None):
    """A model and tokenizer for generation: a base model spec, optionally with a LoRA
    adapter on top (always on the full-precision base, as export merges it)."""
    from transformers import AutoModelForCausalLM

    from cockpit.models.sources import resolve_model
    from cockpit.training.recipe import load_tokenizer

    path = resolve_model(spec).path
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype="auto")
    tokenizer = load_tokenizer(adapter if adapter and (adapter / "tokenizer_config.json").exists() else path)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    return model, tokenizer


def load_run_model(run_dir: Path):
    """The trained model of a finished run (adapter on its base, or full weights)."""
    cfg = load_run_config(run_dir)
    model_dir = run_dir / "model"
    if not model_dir.is_dir():
        raise CockpitError(f"run {run_dir.name} has no trained model yet (no model/ directory)",
                           "wait for it to finish, or resume it: llm-cockpit resume " + run_dir.name)
    if (model_dir / "adapter_config.json").exists():
        return load_inference_model(cfg.model, adapter=model_dir)
    return load_inference_model(str(model_dir))


def reference_perplexity(model, tokenizer, examples, max_length: int) -> float:
    """exp(mean cross-entropy) over every answer token of ``examples`` (token-weighted)."""
    import torch

    from cockpit.data.tokenize import tokenize_example

    total_nll, total_tokens = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for ex in examples:
            tok = tokenize_example(ex, tokenizer, max_length)
            if tok is None:
                continue
            ids = torch.tensor([list(tok.input_ids)], device=device)
            labels = torch.tensor([list(tok.labels)], device=device)
            logits = model(input_ids=ids).logits[:, :-1].float()
            target = labels[:, 1:]
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                    ignore_index=-100, reduction="sum")
            total_nll += float(nll)
            total_tokens += int((target != -100).sum())
    if total_tokens == 0:
        return math.nan
    from cockpit.evaluation.metrics import perplexity

    return perplexity(total_nll / total_tokens)


def evaluate_model(model, tokenizer, examples, name: str, max_new_tokens: int = 96,
                   system_prompt: str | None = None, max_length: int = 512,
                   progress: Callable[[str], None] | None = None) -> ModelReport:
    """Answer and score every example; the report's metrics are the means plus perplexity."""
    from cockpit.models.generate import generate
    from cockpit.evaluation.metrics import aggregate, text_scores

    report = ModelReport(model=name)
    if examples and all(ex.text is not None for ex in examples):
        # plain text (continued pretraining) has no prompts to answer: how well the model
        # predicts held-out documents is the measure
        if progress:
            progress(f"{name}: perplexity of {len(examples)} held-out documents")
        report.metrics = {"perplexity": reference_perplexity(model, tokenizer, examples, max_length),
                          "examples": len(examples)}
        return report
    for i, ex in enumerate(examples, 1):
        if progress:
            progress(f"{name}: example {i}/{len(examples)}")
        answer = generate(model, tokenizer, [ex.prompt], max_new_tokens, system_prompt=ex.system or system_prompt)[0]
        must = [str(m) for m in ex.meta.get("must_include", []) or []]
        report.examples.append({"prompt": ex.prompt, "reference": ex.completion, "answer": answer,
                                "task": ex.meta.get("task"), "must_include": must,
                                "scores": text_scores(answer, ex.completion, must)})
    report.metrics = dict(aggregate(e["scores"] for e in report.examples))
    if progress:
        progress(f"{name}: perplexity of the reference answers")
    report.metrics["perplexity"] = reference_perplexity(model, tokenizer, examples, max_length)
    report.metrics["examples"] = len(examples)
    return report


def eval_examples(data: str | None, cfg: TrainConfig | None):
    """The held-out examples: ``--data``, else the run's eval_data, else its eval split."""
    from cockpit.data import DataOptions, load_examples_strict, split_examples

    if data:
        return load_examples_strict(data), data
    if cfg is None:
        raise CockpitError("no eval data given", "pass --data FILE (JSONL with prompt/completion)")
    options = DataOptions.from_config(cfg)  # the run's format, column mapping and system prompt
    if cfg.eval_data:
        return load_examples_strict(cfg.eval_data, options=options.for_eval()), cfg.eval_data
    examples = load_examples_strict(cfg.data, options=options)
    held_out = split_examples(examples, cfg.eval_split, cfg.seed)[1]
    if not held_out:
        raise CockpitError(f"the run has no held-out examples (eval_split={cfg.eval_split})", "pass --data FILE")
    return held_out, f"{cfg.data} (held-out split)"


def evaluate_run(run_dir: Path, data: str | None = None, baseline: bool = False, max_new_tokens: int = 96,
                 limit: int | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluate a run (and optionally its base model) and write ``eval.json``."""
    cfg = load_run_config(run_dir)
    examples, source = eval_examples(data, cfg)
    examples = examples[:limit] if limit else examples
    model, tok = load_run_model(run_dir)
    tuned = evaluate_model(model, tok, examples, f"{run_dir.name} ({cfg.method})", max_new_tokens,
                           cfg.system_prompt, cfg.max_length, progress)
    del model
    base = None
    if baseline:
        from cockpit.evaluation.preference import starting_model_spec

        spec, label = starting_model_spec(cfg)
        bmodel, btok = load_inference_model(spec)
        base = evaluate_model(bmodel, btok, examples, label, max_new_tokens,
                              cfg.system_prompt, cfg.max_length, progress)
    result = {"version": 1, "created": time.time(), "data": str(source), "max_new_tokens": max_new_tokens,
              "finetuned": tuned.to_dict(), "baseline": base.to_dict() if base else None}
    atomic_write_json(run_dir / EVAL_FILE, _other_sections(run_dir / EVAL_FILE, result) | result)
    return result


def merge_eval_json(run_dir: Path, key: str, value: Any) -> dict[str, Any]:
    """Set ``key`` in the run's ``eval.json`` and keep everything else in it (atomic write)."""
    import json

    path = run_dir / EVAL_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        data = {"version": 1}
    data[key] = value
    atomic_write_json(path, data)
    return data


def _other_sections(path: Path, result: dict[str, Any]) -> dict[str, Any]:
    """What other commands left in eval.json (``eval --regression``'s section): kept."""
    import json

    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in old.items() if k not in result} if isinstance(old, dict) else {}


def evaluate_spec(spec: str, data: str, max_new_tokens: int = 96, limit: int | None = None,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluate any model (no run directory, nothing written)."""
    examples, source = eval_examples(data, None)
    examples = examples[:limit] if limit else examples
    model, tok = load_inference_model(spec)
    report = evaluate_model(model, tok, examples, spec, max_new_tokens, progress=progress)
    return {"version": 1, "created": time.time(), "data": str(source), "max_new_tokens": max_new_tokens,
            "finetuned": report.to_dict(), "baseline": None}
