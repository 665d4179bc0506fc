"""Preference tuning through TRL: which stages the installed TRL offers, and its trainer for a run.

``stage=dpo`` trains on pairs of a better and a worse answer (Direct Preference
Optimization: no reward model, the loss pushes the policy's log-probability of the chosen
answer up and of the rejected one down, relative to a frozen reference); ``stage=kto`` on
answers labelled good or bad one at a time. The losses are TRL's (``trl.DPOTrainer``,
``trl.KTOTrainer``), never ours. ``stage=orpo`` is refused while TRL offers ORPO only
under ``trl.experimental`` (TRL 1.x): one line naming the installed version.

The reference model, per method (what the memory estimator counts, ``cockpit.planning.memory``):

* ``full``: a second, frozen copy of the starting weights, loaded by TRL;
* ``lora``/``int8``/``qlora`` with a new adapter: the model with its adapters switched off
  (one copy in memory: TRL wraps the base with our :func:`cockpit.training.recipe.lora_config`);
* ``from_run=continue``: the parent's adapter keeps training, and TRL keeps a frozen copy
  of it as the ``ref`` adapter (a few MB) beside the base.

A step's log carries the stage's own numbers (``rewards/chosen``, ``rewards/rejected``,
``rewards/margins``, ``rewards/accuracies``, ``logps/*``, KTO's ``kl``):
:func:`stage_metrics` picks them for the ``step`` event.
"""

from __future__ import annotations

from typing import Any

from cockpit.errors import CockpitError

# stage -> (trainer, config) class names in TRL's top-level (supported) API
TRL_CLASSES = {"dpo": ("DPOTrainer", "DPOConfig"), "kto": ("KTOTrainer", "KTOConfig"),
               "orpo": ("ORPOTrainer", "ORPOConfig")}
STAGE_NAMES = {"sft": "supervised fine-tuning", "dpo": "DPO (preference pairs)",
               "kto": "KTO (answers labelled good or bad)", "orpo": "ORPO (preference pairs, no reference)"}
METRIC_PREFIXES = ("rewards/", "logps/")
METRIC_KEYS = ("kl",)


def trl_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("trl")
    except Exception:  # noqa: BLE001 - not installed
        return None


def trl_classes(stage: str) -> tuple[Any, Any]:
    """TRL's trainer and config classes for ``stage``; CockpitError when this TRL has none."""
    names = TRL_CLASSES.get(stage)
    if names is None:
        raise CockpitError(f"stage={stage} is not a preference stage", "use stage=dpo, kto or orpo")
    version = trl_version()
    if version is None:
        raise CockpitError(f"stage={stage} trains through TRL, which is not installed", "pip install trl")
    import trl

    trainer, config = (getattr(trl, name, None) for name in names)
    if trainer is None or config is None:
        offered = [s for s, (t, c) in TRL_CLASSES.items() if getattr(trl, t, None) and getattr(trl, c, None)]
        raise CockpitError(f"stage={stage}: TRL {version} offers {names[0]} only as an experimental trainer "
                           "(trl.experimental), not as a supported one",
                           f"use stage={' or stage='.join(offered) or 'dpo'}; ORPO comes back when TRL supports it")
    return trainer, config


def check_stage(cfg: Any) -> None:
    """Before a run directory exists: this TRL trains the stage, with this batch."""
    if not cfg.is_preference:
        return
    trl_classes(cfg.stage)
    if cfg.stage == "kto" and cfg.batch_size < 2:
        raise CockpitError("stage=kto needs batch_size of at least 2: its KL term compares each answer with "
                           "another one of the same batch", "set batch_size=2 or more (grad_accum can stay)")


def stage_metrics(logs: dict[str, Any]) -> dict[str, float]:
    """The stage's own numbers in a training log (nothing for sft)."""
    out: dict[str, float] = {}
    for key, value in logs.items():
        if key.startswith(METRIC_PREFIXES) or key in METRIC_KEYS:
            try:
                out[key] = float(value)
            except (TypeError, ValueError):
                continue
    return out


# The dashboard's stage charts: (title, [(legend, metric key in step/eval events), ...]). They
# take the places of the learning-rate and speed charts (both stay readable in the progress
# line and the details tab); sft keeps those.
STAGE_CHARTS = {
    "dpo": (("reward margin", (("train", "rewards/margins"), ("eval", "eval_rewards/margins"))),
            ("reward accuracy", (("train", "rewards/accuracies"), ("eval", "eval_rewards/accuracies")))),
    "kto": (("reward margin", (("train", "rewards/margins"), ("eval", "eval_rewards/margins"))),
            ("rewards", (("chosen", "rewards/chosen"), ("rejected", "rewards/rejected")))),
}
STAGE_CHARTS["orpo"] = STAGE_CHARTS["dpo"]


def stage_charts(stage: str | None) -> tuple:
    """What the dashboard charts for ``stage`` in place of learning rate and speed; () for sft."""
    return STAGE_CHARTS.get(str(stage or "sft"), ())


_SHORT_NAMES = (("rewards/margins", "margin"), ("rewards/accuracies", "acc"), ("kl", "kl"))


def stage_words(metrics: Any, prefix: str = "") -> list[str]:
    """``["margin 0.41", "acc 0.75"]``: the stage's numbers a progress line shows (``prefix``
    ``eval_`` for an eval event's)."""
    if not isinstance(metrics, dict):
        return []
    out = []
    for key, short in _SHORT_NAMES:
        value = metrics.get(prefix + key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(f"{short} {value:.3g}")
    return out


def stage_arguments(cfg: Any) -> dict[str, Any]:
    """What the stage's TRL config takes beyond transformers' TrainingArguments."""
    return {
        "beta": cfg.beta,
        "max_length": cfg.max_length,
        # load_model already did what grad_ckpt asks (TRL turns checkpointing on by default)
        "gradient_checkpointing": False,
        "dataset_num_proc": None,
        # TRL's default, said aloud: dropout off in policy and reference, so their log-probabilities
        # of the same answer differ only by training (lora_dropout does not apply to these stages)
        "disable_dropout": True,
    }


def build_trainer(cfg: Any, model: Any, training_kwargs: dict[str, Any], train_set: Any, eval_set: Any,
                  tokenizer: Any, callbacks: list, new_adapter: bool) -> Any:
    """TRL's trainer for ``cfg.stage``. ``new_adapter``: the model comes without its LoRA and
    TRL attaches :func:`cockpit.training.recipe.lora_config` (reference = adapters off)."""
    from cockpit.training.recipe import lora_config

    trainer_cls, config_cls = trl_classes(cfg.stage)
    kwargs = {k: v for k, v in training_kwargs.items()
              if k not in ("remove_unused_columns", "prediction_loss_only", "use_liger_kernel")}
    args = config_cls(**kwargs, **stage_arguments(cfg))
    return trainer_cls(
        model=model, ref_model=None, args=args, train_dataset=train_set, eval_dataset=eval_set,
        processing_class=tokenizer, callbacks=callbacks,
        peft_config=lora_config(cfg, model) if new_adapter else None,
    )
