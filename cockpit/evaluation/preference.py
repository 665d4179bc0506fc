"""How often a model prefers the chosen answer of held-out preference pairs.

For each pair the model scores both answers by their log-likelihood given the prompt: the
sum of the log-probabilities of the answer's tokens, rendered as training renders them
(``cockpit.data.preference.answer_token_ids``). The pair counts as preferred when the
chosen answer is the likelier one. This is what DPO optimizes (relative to its reference)
and what supervised tuning on the chosen answers moves only indirectly, so it is the
measure that tells an SFT model from the same model after DPO.

Results go to the ``preference`` section of ``eval.json`` (written atomically; the other
sections are kept): ``{"data", "model", "metrics", "examples", "baseline": {"model",
"metrics", "examples"} | null}``, the metrics being::

    pref_accuracy   share of pairs where log p(chosen) > log p(rejected)
    pref_margin     mean of log p(chosen) - log p(rejected), in nats
    chosen_logp     mean log p(chosen); rejected_logp: the same for the rejected answers

``eval RUN`` scores a preference run's held-out pairs (its eval_data, or its eval split),
and ``eval RUN --data PAIRS`` scores any run's model on a file of pairs; ``--baseline`` adds
the model the run started from: its parent run's result when chained, else its base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from cockpit.errors import CockpitError

PREFERENCE_METRICS = ("pref_accuracy", "pref_margin", "chosen_logp", "rejected_logp")
SECTION = "preference"


def answer_logps(model: Any, tokenizer: Any, example: Any, max_length: int) -> list[float]:
    """Sum of log p(token) over each answer's tokens (chosen first), given the prompt; the
    sequence is cut to ``max_length`` from the end, as training cuts it."""
    import torch

    from cockpit.data.preference import answer_token_ids

    prompt_ids, answers = answer_token_ids(example, tokenizer)
    device = next(model.parameters()).device
    out = []
    for answer in answers:
        ids = (prompt_ids + answer)[:max_length]
        start = min(len(prompt_ids), len(ids))
        if start >= len(ids) or start == 0:
            out.append(float("nan"))  # the prompt alone fills max_length: nothing of the answer is scored
            continue
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids], device=device)).logits[0, start - 1:-1].float()
        target = torch.tensor(ids[start:], device=device)
        out.append(float(torch.log_softmax(logits, dim=-1).gather(1, target[:, None]).sum()))
    return out


def score_pairs(model: Any, tokenizer: Any, pairs: list, max_length: int, name: str = "model",
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``{"model", "metrics", "examples"}`` for the pairs (metrics as the module docstring says)."""
    model.eval()
    examples = []
    for i, ex in enumerate(pairs, 1):
        if progress and (i == 1 or i % 10 == 0 or i == len(pairs)):
            progress(f"{name}: pair {i}/{len(pairs)}")
        chosen, rejected = answer_logps(model, tokenizer, ex, max_length)
        examples.append({"prompt": ex.prompt_text(), "where": ex.where, "chosen_logp": chosen,
                         "rejected_logp": rejected, "preferred": chosen > rejected})
    return {"model": name, "metrics": preference_metrics(examples), "examples": examples}


def preference_metrics(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """The aggregate of scored pairs; pairs whose answers could not be scored are left out."""
    import math

    scored = [e for e in examples if not (math.isnan(e["chosen_logp"]) or math.isnan(e["rejected_logp"]))]
    n = len(scored)
    if not n:
        return {"pairs": 0, "unscored": len(examples)}

    def mean(key: str) -> float:
        return sum(e[key] for e in scored) / n

    return {"pref_accuracy": sum(e["preferred"] for e in scored) / n,
            "pref_margin": sum(e["chosen_logp"] - e["rejected_logp"] for e in scored) / n,
            "chosen_logp": mean("chosen_logp"), "rejected_logp": mean("rejected_logp"),
            "pairs": n, "unscored": len(examples) - n}


def is_preference_data(spec: str | None) -> bool:
    """Whether ``spec`` (a data file or dataset) holds preference records."""
    if not spec:
        return False
    from cockpit.data.preference import is_preference_source

    return is_preference_source(spec)


def held_out_pairs(cfg: Any, data: str | None) -> tuple[list, str]:
    """``(pairs, where they come from)``: ``--data``, else the run's held-out pairs."""
    from cockpit.data.loading import DataOptions
    from cockpit.data.preference import checked_pairs, preference_splits

    if data:
        return checked_pairs(data), data
    if not getattr(cfg, "is_preference", False):
        raise CockpitError("this run trained on supervised data: scoring preferences needs pairs",
                           "pass --data PAIRS.jsonl (e.g. data/dsl_pref_eval.jsonl)")
    if cfg.eval_data:
        return checked_pairs(cfg.eval_data, DataOptions.from_config(cfg).for_eval(), "eval_data"), cfg.eval_data
    held = preference_splits(cfg, "dpo")[1]
    if not held:
        raise CockpitError(f"the run has no held-out pairs (eval_split={cfg.eval_split})", "pass --data PAIRS.jsonl")
    return held, f"{cfg.data} (held-out split)"


def starting_model_spec(cfg: Any) -> tuple[str, str]:
    """``(model spec, label)`` of what a run started from: its parent run when chained (the
    parent's result), else its base model."""
    if cfg.parent_run:
        return str(cfg.parent_run), f"{Path(cfg.parent_run).name} (started from)"
    return cfg.model, f"{cfg.model} (base)"


def evaluate_preference_run(run_dir: Path, data: str | None = None, baseline: bool = False,
                            limit: int | None = None, progress: Callable[[str], None] | None = None
                            ) -> dict[str, Any]:
    """Score a run's model (and with ``baseline`` the model it started from) on held-out
    pairs; the result goes to the ``preference`` section of the run's ``eval.json``."""
    from cockpit.evaluation.heldout import load_inference_model, load_run_model, merge_eval_json
    from cockpit.run_config import load_run_config

    cfg = load_run_config(run_dir)
    pairs, source = held_out_pairs(cfg, data)
    pairs = pairs[:limit] if limit else pairs
    model, tok = load_run_model(run_dir)
    tuned = score_pairs(model, tok, pairs, cfg.max_length, f"{run_dir.name} ({cfg.stage}, {cfg.method})", progress)
    del model
    base = None
    if baseline:
        spec, label = starting_model_spec(cfg)
        bmodel, btok = load_inference_model(spec)
        base = score_pairs(bmodel, btok, pairs, cfg.max_length, label, progress)
    result = {"data": str(source), **tuned, "baseline": base}
    merge_eval_json(run_dir, SECTION, result)
    return result
