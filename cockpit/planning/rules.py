"""The review's words on a config: the usual ranges of its knobs, and its steps and time.

Plain data (:class:`Line`: a mark, a bold lead, the rest) that every front end renders its
own way: the Textual review in colour, the plain wizard as text. The ranges are the
workshop's (WORKSHOP.md: learning rate by model size, warmup, clipping).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cockpit.planning.estimate import RunEstimate
from cockpit.run.words import fmt_duration

OK, LEAVES, NOTE = "✔", "!", "•"


@dataclass(frozen=True)
class Line:
    """One line of the review: ``mark`` (✔ inside the usual range, ! outside, • a fact, or
    none), a ``lead`` shown in bold, then ``text``."""

    text: str
    lead: str = ""
    mark: str = ""

    @property
    def plain(self) -> str:
        return (f"{self.mark} " if self.mark else "") + self.lead + self.text


def plain_text(lines: list[Line]) -> str:
    """The lines as plain text, one per line."""
    return "\n".join(line.plain for line in lines)


def lr_range(cfg: Any, params: int | None) -> tuple[float, float] | None:
    """The usual learning rates of this stage, method and model size (None: size unknown)."""
    if cfg.is_preference:
        # preference tuning moves a trained model a little: far lower rates than SFT
        return (5e-5, 2e-4) if cfg.uses_lora else (1e-7, 1e-6)
    if not params:
        return None
    return (5e-4, 1e-3) if params < 1e9 else (1e-4, 5e-4) if params <= 7.5e9 else (5e-5, 2e-4)


def rules_of_thumb(cfg: Any, params: int | None) -> list[Line]:
    """The usual ranges for this model's size, each marked where the config leaves them."""
    lines: list[Line] = []
    usual = lr_range(cfg, params)
    if cfg.is_preference and usual:
        low, high = usual
        lines.append(Line(f"learning rate {cfg.lr:g}: {cfg.stage.upper()} usually takes {low:g}..{high:g} with "
                          f"{'LoRA' if cfg.uses_lora else 'every weight trained (the paper: 5e-7)'}",
                          mark=OK if low <= cfg.lr <= high else LEAVES))
        lines.append(Line(f"beta {cfg.beta:g}: how far the model may move from its reference (0.1 is usual)",
                          mark=OK if 0.01 <= cfg.beta <= 0.5 else LEAVES))
    elif usual:
        low, high = usual
        inside = low <= cfg.lr <= high or (cfg.uses_lora and cfg.lr == 2e-4)
        lines.append(Line(f"learning rate {cfg.lr:g}: models of {params / 1e9:.1f}B usually take {low:g}..{high:g}"
                          + (" (LoRA often 2e-4)" if cfg.uses_lora else ""), mark=OK if inside else LEAVES))
    lines.append(Line(f"warmup {cfg.warmup_ratio:.0%} of the steps (3-10% is usual), then {cfg.lr_scheduler} decay",
                      mark=OK if 0.03 <= cfg.warmup_ratio <= 0.1 else LEAVES))
    lines.append(Line(f"gradient clipping at {cfg.max_grad_norm:g} (0.5-1.0 keeps single bad batches harmless)",
                      mark=OK if 0.5 <= cfg.max_grad_norm <= 1.0 else LEAVES))
    lines.append(Line(f"effective batch {cfg.batch_size * cfg.grad_accum} = batch {cfg.batch_size} x accumulation "
                      f"{cfg.grad_accum} (x the number of GPUs)", mark=NOTE))
    return lines


def estimate_lines(cfg: Any, est: RunEstimate) -> list[Line]:
    """Steps with their arithmetic, tokens, the rough time with its basis, and the cadence
    of checkpoints, evaluations and samples."""
    if cfg.max_steps:
        why = (f" (max_steps={cfg.max_steps}; {est.train_examples} training examples, "
               f"batch {cfg.batch_size} x accumulation {cfg.grad_accum})")
    else:
        epochs = f"{cfg.epochs:g} epoch{'s' if cfg.epochs != 1 else ''}"
        why = (f": {est.train_examples} training examples / (batch {cfg.batch_size} x accumulation "
               f"{cfg.grad_accum}) x {epochs}")
    lines = [Line(why, lead=f"{est.steps} optimizer steps")]
    if est.seconds is not None:
        lines.append(Line(f" for ~{est.tokens:,} tokens ({est.basis}; the dashboard shows the real speed "
                          "after a few steps)", lead=f"roughly {fmt_duration(est.seconds)}"))
    lines.append(Line(f"checkpoint every {cfg.save_steps} steps, eval "
                      + (f"every {cfg.eval_steps} steps" if cfg.eval_steps else "at the end")
                      + ", sample answers " + (f"every {cfg.sample_every} steps" if cfg.sample_every else
                                               "at the start and the end")))
    return lines


__all__ = ["Line", "rules_of_thumb", "estimate_lines", "lr_range", "plain_text"]
