"""The advisor: how to train this model on this machine, and from which model.

Two questions a newcomer cannot answer alone:

* **Which method fits?** The workshop's rule of thumb compares memory with the model's
  16-bit size (>= 2x: a 16-bit base; >= 1x: an INT8 base; else QLoRA). :func:`recommend`
  states that rule and then lets the estimate decide (:mod:`cockpit.planning.memory`, which also
  counts activations and logits at the chosen batch and length): the method with the least
  quality cost that fits with 10% headroom. When nothing fits, it walks the OOM ladder in
  the workshop's order (smaller batch with more accumulation, gradient checkpointing,
  lighter methods, shorter sequences, a smaller model) and shows the number each rung gives.
* **Base or specialized model?** :func:`model_kind_advice` spots instruct/chat/code/SQL/
  medical/finance/RLHF models by name and catalog entry, and answers by task: new patterns
  or behaviour -> a base model; extending the model's own domain -> keep the specialist.

Both are pure functions of their inputs: the TUI and ``llm-cockpit plan`` call them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cockpit.models import catalog
from cockpit.models.catalog import ModelSpec
from cockpit.planning.memory import (
    ALL_LINEAR,
    MemoryEstimate,
    estimate_memory,
    fmt_params,
)
from cockpit.run.words import fmt_bytes

HEADROOM = 0.10
AUTO_METHODS = ("lora", "int8", "qlora")  # all LoRA variants, by how much the base is compressed
LADDER_METHODS = ("full", "lora", "int8", "qlora")  # least quality cost first
MIN_SEQ = 128
QUALITY = {
    "full": "every weight trains: the most capacity, but it needs more data and forgets more easily",
    "lora": "adapters on a 16-bit base: no loss from compressing the base",
    "int8": "adapters on an 8-bit base (LLM.int8): a small quality cost, slower steps",
    "qlora": "adapters on a 4-bit NF4 base: the lightest, a small quality cost and ~10% slower",
}


@dataclass(frozen=True)
class Settings:
    """One training configuration the advisor considers."""

    model: str
    method: str
    batch: int
    seq: int
    grad_ckpt: bool
    grad_accum: int = 1

    def describe(self) -> str:
        accum = f" x {self.grad_accum} accumulation" if self.grad_accum > 1 else ""
        ckpt = ", gradient checkpointing" if self.grad_ckpt else ""
        return f"{self.method}, batch {self.batch}{accum}, {self.seq} tokens{ckpt}"


@dataclass
class LadderStep:
    """One rung of the OOM ladder: what changes and what it gives."""

    action: str
    settings: Settings
    total_bytes: int
    fits: bool

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "total_bytes": self.total_bytes, "fits": self.fits,
                **{k: v for k, v in self.settings.__dict__.items()}}


@dataclass
class Recommendation:
    """The advisor's answer.

    ``method``/``settings``/``estimate``/``fits`` describe the recommended configuration (the
    first ladder rung that fits, or the last one tried); ``asked`` is the configuration as
    the user asked for it (for ``auto``: LoRA on a 16-bit base at the asked settings).
    """

    method: str | None  # None: nothing fits, even at the bottom of the ladder
    fits: bool
    estimate: MemoryEstimate
    settings: Settings
    budget_bytes: int
    usable_bytes: int
    device: str
    asked: MemoryEstimate
    asked_fits: bool
    reasons: list[str] = field(default_factory=list)
    ladder: list[LadderStep] = field(default_factory=list)
    candidates: dict[str, int] = field(default_factory=dict)  # method -> bytes at the asked settings

    def to_dict(self) -> dict[str, Any]:
        return {
            "recommended_method": self.method, "fits": self.fits, "device": self.device,
            "budget_bytes": self.budget_bytes, "usable_bytes": self.usable_bytes,
            "settings": dict(self.settings.__dict__), "estimate": self.estimate.to_dict(),
            "asked": self.asked.to_dict(), "asked_fits": self.asked_fits,
            "reasons": list(self.reasons), "ladder": [s.to_dict() for s in self.ladder],
            "candidates": dict(self.candidates),
        }


def recommend(
    spec: ModelSpec,
    budget_bytes: int,
    device: str = "cuda",
    method: str = "auto",
    batch: int = 4,
    seq: int = 512,
    lora_r: int = 16,
    targets: Sequence[str] | None = None,
    grad_ckpt: bool = False,
    lora_dropout: float = 0.05,
    gpus: int = 1,
    grad_accum: int = 1,
    stage: str = "sft",
) -> Recommendation:
    """The method (and, if needed, the settings) to train ``spec`` within ``budget_bytes``."""
    targets = tuple(targets or ALL_LINEAR)
    usable = int(budget_bytes * (1 - HEADROOM))

    def estimate(s: Settings, model: ModelSpec = spec) -> MemoryEstimate:
        return estimate_memory(model, s.method, s.batch, s.seq, lora_r, targets, s.grad_ckpt, device,
                               lora_dropout=lora_dropout, stage=stage)

    asked = Settings(spec.id, "lora" if method == "auto" else method, batch, seq, grad_ckpt, grad_accum)
    candidates = {m: estimate(replace(asked, method=m)).total_bytes for m in LADDER_METHODS}
    reasons = [_sizes_line(spec), _rule_of_thumb(spec, budget_bytes, device)]
    where = "GPU" if device == "cuda" else "RAM"
    budget_text = f"{fmt_bytes(usable)} usable ({fmt_bytes(budget_bytes)} {where} minus {HEADROOM:.0%} headroom)"

    steps = _ladder(spec, asked, estimate, usable, method == "auto", gpus)
    first_fit = next((s for s in steps if s.fits), None)
    chosen = first_fit or steps[-1]
    chosen_spec = catalog.lookup(chosen.settings.model) or spec
    chosen_est = estimate(chosen.settings, chosen_spec)

    if method == "auto" and steps[0].fits:
        reasons.append(f"The estimate decides: {asked.method} needs {fmt_bytes(steps[0].total_bytes)} at "
                       f"batch {batch} x {seq} tokens; {budget_text}: it fits, and {QUALITY[asked.method]}.")
    elif steps[0].fits:
        reasons.append(f"{method} needs {fmt_bytes(steps[0].total_bytes)} at batch {batch} x {seq} tokens; "
                       f"{budget_text}: it fits. {QUALITY[method].capitalize()}.")
    else:
        reasons.append(f"{asked.method} needs {fmt_bytes(steps[0].total_bytes)} at batch {batch} x {seq} tokens, "
                       f"more than the {budget_text}.")
        if first_fit is not None:
            reasons.append(f"The OOM ladder (cheapest change first) gets there: {first_fit.action} -> "
                           f"{first_fit.settings.describe()}, {fmt_bytes(first_fit.total_bytes)}.")
        else:
            reasons.append("Nothing fits, even at the bottom of the ladder: use a machine with more memory "
                           "or a smaller model.")
    if method == "auto" and candidates["full"] <= usable:
        reasons.append(f"Full fine-tuning would fit too ({fmt_bytes(candidates['full'])}); choose method=full "
                       "to update every weight (it needs more data and saves a full copy of the model).")
    elif method != "full":
        reasons.append(f"Full fine-tuning with AdamW would need {fmt_bytes(candidates['full'])} "
                       "(weights, gradients and two optimizer states per parameter).")
    if gpus > 1 and first_fit is not steps[0]:
        reasons.append(f"With {gpus} GPUs, sharding (FSDP or DeepSpeed ZeRO-3 through accelerate) splits weights "
                       "and optimizer states across them, which this per-GPU estimate does not count.")
    if device == "cpu":
        reasons.append("No GPU: training runs on the CPU in fp32. That is fine for the bundled 135M model and a "
                       "few dozen examples, slow for anything larger.")
        if chosen.settings.method in ("int8", "qlora"):
            reasons.append("bitsandbytes' 8-bit and 4-bit kernels on the CPU are much slower than fp32 LoRA.")
    return Recommendation(
        method=chosen.settings.method if first_fit else None, fits=first_fit is not None, estimate=chosen_est,
        settings=chosen.settings, budget_bytes=int(budget_bytes), usable_bytes=usable, device=device,
        asked=estimate(asked), asked_fits=steps[0].fits, reasons=reasons, ladder=steps if not steps[0].fits else [], candidates=candidates,
    )


def _ladder(spec: ModelSpec, start: Settings, estimate, usable: int, auto: bool, gpus: int) -> list[LadderStep]:
    """Cumulative rungs from ``start``; stops at the first that fits."""
    steps: list[LadderStep] = []

    def add(action: str, s: Settings, model: ModelSpec = spec) -> bool:
        total = estimate(s, model).total_bytes
        steps.append(LadderStep(action, s, total, total <= usable))
        return total <= usable

    s = start
    if add("as asked", s):
        return steps
    if s.batch > 1:
        s = replace(s, batch=1, grad_accum=s.grad_accum * s.batch)
        if add(f"batch 1 with {s.grad_accum}x gradient accumulation (same effective batch)", s):
            return steps
    if not s.grad_ckpt:
        s = replace(s, grad_ckpt=True)
        if add("gradient checkpointing (recompute activations: ~20-30% slower)", s):
            return steps
    for m in LADDER_METHODS[LADDER_METHODS.index(s.method) + 1:]:
        s = replace(s, method=m)
        if add(f"{m}: {QUALITY[m]}", s):
            return steps
    while s.seq > MIN_SEQ:
        s = replace(s, seq=max(MIN_SEQ, s.seq // 2))
        if add(f"shorter sequences: {s.seq} tokens (longer examples are truncated)", s):
            return steps
    for smaller in catalog.smaller_models(spec):
        if add(f"a smaller model: {smaller.id} ({fmt_params(smaller.params)})", replace(s, model=smaller.id), smaller):
            return steps
    return steps


def _sizes_line(spec: ModelSpec) -> str:
    p = spec.params
    nf4 = spec.linear_params * 0.516 + 2 * (p - spec.linear_params)
    return (f"{spec.id} has {fmt_params(p)} parameters: {fmt_bytes(2 * p)} in 16-bit, "
            f"{fmt_bytes(spec.linear_params + 2 * (p - spec.linear_params))} with an INT8 base, "
            f"{fmt_bytes(nf4)} with an NF4 base.")


def _rule_of_thumb(spec: ModelSpec, budget: int, device: str) -> str:
    size16 = 2 * spec.params
    ratio = budget / size16
    pick = "a 16-bit base" if ratio >= 2 else "an INT8 base" if ratio >= 1 else "QLoRA (4-bit base)"
    where = "GPU memory" if device == "cuda" else "RAM"
    return (f"Rule of thumb: {where} {fmt_bytes(budget)} is {ratio:.1f}x the 16-bit model size "
            f"({fmt_bytes(size16)}): >= 2x trains on a 16-bit base, >= 1x on an INT8 base, "
            f"below that with QLoRA; here: {pick}.")


# --- base vs specialized ------------------------------------------------------------------

TASKS = {
    "new": "teach new patterns, a new language or a new format",
    "extend": "extend what the model already does, within its own domain",
    "behaviour": "change how it behaves or answers (tone, format, persona)",
}
# name token -> what it means; matched on whole tokens of the id (split at / - _ . and spaces)
RED_FLAGS = {
    "instruct": "instruction-tuned", "it": "instruction-tuned", "chat": "chat-tuned", "sft": "instruction-tuned",
    "rlhf": "preference-aligned (RLHF)", "dpo": "preference-aligned (DPO)", "orpo": "preference-aligned (ORPO)",
    "code": "code", "coder": "code", "sql": "SQL", "med": "medical", "medical": "medical", "bio": "biomedical",
    "clinical": "medical", "fin": "finance", "finance": "finance", "math": "math", "legal": "legal", "law": "legal",
}
INSTRUCT_FLAGS = {"instruction-tuned", "chat-tuned", "preference-aligned (RLHF)", "preference-aligned (DPO)",
                  "preference-aligned (ORPO)"}
TINY_CHAT_EXAMPLES = 200


@dataclass
class Advice:
    """Base-or-specialized advice for one model and task."""

    model_id: str
    specialized: bool
    flags: list[str]  # what the name or catalog says it is specialized for
    task: str | None
    verdict: str  # base | keep | ask
    suggested_model: str | None
    reasons: list[str]
    question: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def specialization_flags(model_id: str, kind: str | None = None) -> list[str]:
    """What a model is specialized for, from its catalog kind and the tokens of its name."""
    tokens = [t for t in re.split(r"[/\-_.\s]+", model_id.lower()) if t]
    found: list[str] = []
    for token in tokens:
        stem = re.sub(r"\d+$", "", token)
        # whole tokens ("med", "it"), or distinctive words inside one ("sqlcoder", "codellama")
        labels = [RED_FLAGS[stem]] if stem in RED_FLAGS else [
            label for word, label in RED_FLAGS.items() if (len(word) >= 4 or word == "sql") and word in token]
        found.extend(label for label in labels if label not in found)
    if kind in ("instruct", "code-instruct") and "instruction-tuned" not in found:
        found.append("instruction-tuned")
    if kind in ("code", "code-instruct") and "code" not in found:
        found.append("code")
    return found


def model_kind_advice(model_id: str, task: str | None = None, examples: int | None = None,
                      chat_data: bool = False) -> Advice:
    """Should training start from this model or from a base model? ``task``: new | extend | behaviour."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}")
    spec = catalog.lookup(model_id)
    name = spec.id if spec else model_id
    flags = specialization_flags(name, spec.kind if spec else None)
    base = catalog.base_of(spec) if spec else None
    suggestion = base.id if base else None
    if not flags:
        return Advice(name, False, [], task, "keep", None,
                      ["A base model: the most flexible starting point, nothing to unlearn."])
    what = " and ".join(flags)
    instruct = any(f in INSTRUCT_FLAGS for f in flags)
    reasons = [(f"{name} is {what}: specialized models are more rigid than base models, "
                "and each specialization narrows what training can easily change.")]
    tiny_chat = instruct and chat_data and examples is not None and examples <= TINY_CHAT_EXAMPLES
    if task is None:
        return Advice(name, True, flags, None, "ask", suggestion, reasons,
                      question="What should this training do?", options=dict(TASKS))
    if task == "extend":
        reasons.append(f"You extend what it already knows: keep the specialist, its {what} skills are the "
                       "head start you want (for example house style on a code model).")
        verdict = "keep"
    elif tiny_chat:
        reasons.append(f"With only {examples} chat examples, the instruct model already speaks the chat format "
                       "your data uses; starting from it is likely better than teaching a base model the format "
                       "from so few examples.")
        verdict = "keep"
    else:
        why = "new patterns, a new language or format" if task == "new" else "changed behaviour"
        reasons.append(f"For {why} a base model learns best: it has no habits to unlearn"
                       + (", and instruct models resist new knowledge (preference tuning aside)." if instruct else "."))
        verdict = "base"
    if verdict == "base" and suggestion:
        reasons.append(f"Its base model is {suggestion}.")
    elif verdict == "base":
        reasons.append("Look for the same model without the instruct/chat/domain suffix.")
    if name == "HuggingFaceTB/SmolLM2-135M-Instruct" and verdict == "base":
        reasons.append("Offline, only the instruct variant is bundled; it is fine for the demo, "
                       "the base needs a download.")
    return Advice(name, True, flags, task, verdict, suggestion if verdict == "base" else None, reasons)
