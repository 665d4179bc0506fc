"""Training configuration: one typed dataclass, YAML presets, ``key=value`` overrides.

Resolution order (later wins): the dataclass defaults, the preset (``presets/NAME.yaml``,
default ``cpu-demo``), a ``--config FILE``, then ``key=value`` pairs from the command line.
Validation names the offending key and the allowed values. The resolved config is saved
in each run as ``config_used.yaml``; secrets never live in it (tokens come from the
environment or the Hugging Face login only).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cockpit.errors import CockpitError
from cockpit.paths import PRESETS_DIR
from cockpit.run.registry import DEFAULT_RUNS_ROOT
from cockpit.run.rundir import RUN_NAME_RE

METHODS = ("full", "lora", "int8", "qlora")
STAGES = ("sft", "dpo", "orpo", "kto")
PREFERENCE_STAGES = ("dpo", "orpo", "kto")
FROM_RUN = ("merge", "continue")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DEFAULT_PRESET = "cpu-demo"
BUNDLED_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
LORA_ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TrainConfig:
    """Everything a training run needs; every field is a ``key=value`` on the command line."""

    model: str = BUNDLED_MODEL
    """Base model: a hub id, a local model directory, a .gguf file, or a finished run (its
    directory, its name, or latest) to start from that run's result (see from_run). The
    default is the bundled SmolLM2-135M-Instruct, which works offline."""

    stage: str = "sft"
    """sft (supervised: learn the answers), or preference tuning through TRL on pairs of a
    better and a worse answer: dpo (Direct Preference Optimization), orpo, or kto (unpaired
    answers labelled good or bad). Preference tuning usually follows an sft run: model=RUN."""

    beta: float = 0.1
    """Preference stages: how far the tuned model may move from the reference (DPO's beta;
    0.1 is usual, lower lets it move further)."""

    from_run: str = "merge"
    """When model names a run: merge (its LoRA adapter merged into its base: the new run
    trains a fresh adapter on that, and the reference of dpo/kto is the merged model) or
    continue (its adapter keeps training; the reference is a frozen copy of it)."""

    parent_run: str | None = None
    """The run this one started from, recorded when the run is created (any value given is
    replaced)."""

    data: str = "data/dsl_train.jsonl"
    """Training data: a JSONL, JSON, CSV, TSV or Parquet file, a directory or glob of them, a
    dataset saved with datasets' save_to_disk, or a Hugging Face Hub dataset as hf:ORG/NAME.
    Formats: prompt/completion, chat messages, Alpaca, ShareGPT, plain text (see data_format).
    A relative path is stored absolute in the run (one that exists only in the bundled data,
    like this default, names the bundled file)."""

    eval_data: str | None = None
    """Held-out data (any source ``data`` accepts; hf:ORG/NAME:test picks a hub split); when
    empty, ``eval_split`` of ``data`` is held out."""

    eval_split: float = 0.1
    """Share of ``data`` held out for evaluation when no ``eval_data`` is given (0 disables)."""

    data_format: str = "auto"
    """How records are read: auto (each record's format from its keys), prompt_completion,
    messages, alpaca, sharegpt, or text (continued pretraining: every token learned, documents
    packed into rows of max_length)."""

    columns: dict[str, str] = field(default_factory=dict)
    """For data whose keys have other names, ours:theirs pairs, e.g. prompt:question,completion:answer
    (or text:content, messages:dialog, role:speaker)."""

    data_split: str = "train"
    """The split of a hub dataset, a saved dataset or a directory of split-named files to train on."""

    data_subset: str | None = None
    """The subset (configuration) of a hub dataset, e.g. a language of a multilingual one."""

    method: str = "lora"
    """full (all weights), lora (adapters on a 16-bit base), int8 (8-bit base + LoRA),
    qlora (4-bit NF4 base + LoRA)."""

    epochs: float = 3.0
    """Passes over the training data (ignored when ``max_steps`` > 0)."""

    max_steps: int = 0
    """Stop after this many optimizer steps; 0 means train for ``epochs``."""

    batch_size: int = 4
    """Examples per device per forward pass (the micro-batch)."""

    grad_accum: int = 1
    """Micro-batches summed before each optimizer step; effective batch = batch_size x grad_accum x GPUs."""

    lr: float = 2e-4
    """Peak learning rate (LoRA: 1e-4..5e-4; full fine-tuning of small models: lower)."""

    warmup_ratio: float = 0.03
    """Share of the steps spent warming the learning rate up from 0 (3-10% is usual)."""

    lr_scheduler: str = "cosine"
    """How the learning rate decays after warmup: cosine, linear, constant, constant_with_warmup."""

    weight_decay: float = 0.0
    """AdamW weight decay (0-0.1)."""

    max_grad_norm: float = 1.0
    """Gradient clipping threshold (0.5-1.0 is usual)."""

    max_length: int = 512
    """Longest tokenized example; longer ones are truncated (the report says how many)."""

    packing: str = "auto"
    """Concatenate the examples of a batch into one row with no padding at all (padding-free,
    the same loss: the examples never see each other). auto: wherever that is exact for the
    model family (Llama, Qwen, Mistral, Gemma, Phi-3 and more); true | false force it."""

    learned_loss: bool = True
    """Compute the output layer and the loss only at the positions that are learned (the
    answers), a chunk at a time: the same loss as transformers' without the logits of every
    prompt and padding token (less memory, less time). Families that soft-cap or scale their
    logits always use transformers' loss; false uses it everywhere."""

    kernels: str = "auto"
    """auto | none | liger: Liger's fused Triton kernels (RMSNorm, SwiGLU, RoPE) on a CUDA GPU
    for the families Liger covers (auto: when liger-kernel is installed)."""

    attn: str = "auto"
    """auto | sdpa | eager | flash_attention_2: the attention kernel. auto: FlashAttention 2 on
    a CUDA GPU in fp16/bf16 when flash-attn is installed, else PyTorch's SDPA."""

    report_to: str = "tensorboard"
    """Experiment trackers, comma-separated: tensorboard (RUN/logs) | wandb | mlflow | trackio, or
    none. Through transformers' own integrations; each needs its package installed, and keys
    come from the environment or the tracker's own login, never from this config."""

    lora_r: int = 16
    """LoRA rank: the width of the adapter matrices (8-64)."""

    lora_alpha: int = 32
    """LoRA scale numerator; the update is scaled by alpha / r (2 x r is a common choice)."""

    lora_dropout: float = 0.05
    """Dropout on the LoRA input (0-0.1)."""

    lora_target_modules: list[str] = field(default_factory=lambda: list(LORA_ALL_LINEAR))
    """Layers that get adapters; the default is every attention and MLP projection."""

    grad_ckpt: bool = False
    """Gradient checkpointing: recompute activations in the backward pass (30-50% less
    activation memory for about 20-30% more time)."""

    precision: str = "auto"
    """auto (bf16 on GPUs that support it, else fp16; fp32 on CPU), fp32, fp16, bf16."""

    save_steps: int = 50
    """Write a full checkpoint every N optimizer steps (a stop or a crash loses at most these)."""

    save_total_limit: int = 3
    """Keep at most this many checkpoints (oldest removed first)."""

    eval_steps: int = 0
    """Compute the eval loss every N steps; 0 means only at the end."""

    early_stopping_patience: int = 0
    """Stop when the eval loss has not improved for this many evaluations (0 disables)."""

    logging_steps: int = 1
    """Write a ``step`` event every N optimizer steps."""

    sample_every: int = 0
    """Generate answers to the probe prompts every N steps (0: only at the start and the end)."""

    sample_prompts: list[str] = field(default_factory=list)
    """Probe prompts for sample generations; empty means the first eval examples' prompts."""

    sample_count: int = 3
    """How many probe prompts are taken from the eval data when ``sample_prompts`` is empty."""

    sample_max_new_tokens: int = 64
    """Length limit of each sample generation."""

    system_prompt: str | None = None
    """A system message added to every example that has none (and to the probes)."""

    seed: int = 42
    """Seed for weights init, data order and dropout: the same seed gives the same run."""

    output_dir: str = DEFAULT_RUNS_ROOT
    """Root of the run directories (relative: to the current directory); each run gets a
    timestamped directory, ``latest`` points at the newest. Every root is remembered, so
    ``llm-cockpit runs`` finds its runs from any directory."""

    run_name: str | None = None
    """Optional suffix of the run directory's name."""

    model_path: str | None = None
    """Where ``model`` is on this machine, recorded when the run is created (any value given
    is replaced): the model directory itself, the materialized copy of the bundled model or
    of a .gguf file in the cache, or a hub model's downloaded snapshot (empty when the
    trainer still has to download it). Informational: training, eval and export resolve
    ``model`` again."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def uses_lora(self) -> bool:
        return self.method in ("lora", "int8", "qlora")

    @property
    def is_preference(self) -> bool:
        """A preference stage (dpo, orpo, kto) rather than supervised fine-tuning."""
        return self.stage in PREFERENCE_STAGES


@functools.cache
def field_docs() -> dict[str, str]:
    """The docstring under each field of :class:`TrainConfig` (for help and the TUI)."""
    tree = ast.parse(inspect.getsource(TrainConfig))
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def preset_path(name: str) -> Path:
    """The YAML file of a preset name (or a path to a YAML file)."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    candidate = PRESETS_DIR / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    raise CockpitError(f"no preset named {name!r}", f"available presets: {', '.join(list_presets())}")


def list_presets() -> list[str]:
    """Training presets (the model catalog and other non-training YAML files are excluded)."""
    return sorted(
        p.stem for p in PRESETS_DIR.glob("*.yaml") if not p.stem.startswith("_") and _is_training_preset(p)
    )


def _is_training_preset(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and set(data) <= set(field_names())


def _load_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError as exc:
        raise CockpitError(f"{what} {path} is a directory", "give a YAML file") from exc
    except OSError as exc:
        raise CockpitError(f"cannot read {what} {path}: {exc.strerror}", "check the path") from exc
    except UnicodeDecodeError as exc:
        raise CockpitError(f"{what} {path} is not UTF-8 text", "give a YAML file") from exc
    try:
        data = yaml.safe_load(text)
    except (ValueError, OverflowError) as exc:  # a YAML date that is no date: 2020-13-45
        raise CockpitError(f"{path}: not valid YAML ({exc})", "fix the value (quote it if it is text)") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise CockpitError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})",
                           "fix the YAML syntax") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CockpitError(f"{path}: expected a mapping of key: value, got {type(data).__name__}",
                           "write one 'key: value' per line")
    return data


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["lr=1e-4", "grad_ckpt=true"]`` -> ``{"lr": 1e-4, "grad_ckpt": True}`` (YAML typing)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CockpitError(f"override {pair!r} is not key=value", "write it like lr=1e-4")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except (yaml.YAMLError, ValueError, OverflowError):  # ValueError: lr=2020-13-45 (a "date")
            value = raw
        if key in ("lora_target_modules", "sample_prompts") and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        out[key] = value
    return out


def build_config(
    preset: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Defaults <- preset <- config file <- overrides, validated."""
    values: dict[str, Any] = {}
    values.update(_load_yaml_mapping(preset_path(preset or DEFAULT_PRESET), "preset"))
    if config_file:
        values.update(_load_yaml_mapping(Path(config_file), "config file"))
    values.update(overrides or {})
    return config_from_dict(values)


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Coerce and validate a mapping of keys into a :class:`TrainConfig`."""
    known = field_names()
    hints = typing.get_type_hints(TrainConfig)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise CockpitError(f"unknown config key {key!r}",
                               f"{hint}`llm-cockpit train --keys` lists every key with its meaning")
        kwargs[key] = _coerce(key, value, hints[key])
    if "packing" in kwargs:  # a boolean in older configs and in YAML: true/false
        kwargs["packing"] = _TRI_STATE.get(str(kwargs["packing"]).strip().lower(), kwargs["packing"])
    cfg = TrainConfig(**kwargs)
    validate(cfg)
    return cfg


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = type(None) in typing.get_args(hint)
    if isinstance(value, str) and value.strip().lower() in _NONE_IS_A_CHOICE.get(key, ()):
        return value.strip().lower()  # kernels=none is a choice, not an empty value
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        if optional:
            return None
        if origin is list:
            return []
        if origin is dict:
            return {}
        raise CockpitError(f"config key {key!r} needs a value", f"{field_docs().get(key, '')}".strip() or None)
    target = args[0] if optional else hint
    t_origin = typing.get_origin(target)
    if t_origin is dict:
        from cockpit.data.columns import parse_columns

        return parse_columns(value)  # names the bad entry itself
    try:
        if t_origin is list:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
                raise TypeError
            return [str(v) for v in value]
        if target is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
                return value.lower() in ("true", "yes", "on", "1")
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise TypeError
        if target is int:
            if isinstance(value, bool):
                raise TypeError
            if isinstance(value, float) and value.is_integer():
                return int(value)
            return int(str(value)) if not isinstance(value, int) else value
        if target is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if target is str:
            if isinstance(value, (dict, list)):
                raise TypeError
            return str(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: float() of an int past 1e308
        pass
    else:
        return value
    words = {float: "a number", int: "a whole number", bool: "true or false", str: "text"}
    tname = words.get(target) or getattr(target, "__name__", str(target)).replace("list", "a list of strings")
    raise CockpitError(f"config key {key!r} must be {tname}, got {value!r}", f"{key}: {field_docs().get(key)}")


# Keys for which the text "none" is one of the allowed values rather than "no value".
_NONE_IS_A_CHOICE = {"kernels": ("none",), "report_to": ("none",)}
_TRI_STATE = {"auto": "auto", **{v: "true" for v in ("true", "yes", "on", "1")},
              **{v: "false" for v in ("false", "no", "off", "0")}}


def _check(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise CockpitError(f"config key {key!r} has an impossible value {value!r}", f"allowed: {allowed}")


def validate(cfg: TrainConfig) -> None:
    """Raise :class:`CockpitError` naming the first key whose value cannot work."""
    _check(cfg.method in METHODS, "method", cfg.method, " | ".join(METHODS))
    _check(cfg.stage in STAGES, "stage", cfg.stage, " | ".join(STAGES))
    _check(cfg.from_run in FROM_RUN, "from_run", cfg.from_run, " | ".join(FROM_RUN))
    _check(math.isfinite(cfg.beta) and 0 < cfg.beta <= 10, "beta", cfg.beta, "a number > 0 (0.1 is usual)")
    _check(cfg.lr_scheduler in SCHEDULERS, "lr_scheduler", cfg.lr_scheduler, " | ".join(SCHEDULERS))
    _check(cfg.precision in PRECISIONS, "precision", cfg.precision, " | ".join(PRECISIONS))
    for key in ("batch_size", "grad_accum", "max_length", "lora_r", "logging_steps", "save_steps",
                "sample_count", "sample_max_new_tokens", "save_total_limit"):
        _check(getattr(cfg, key) >= 1, key, getattr(cfg, key), "an integer >= 1")
    for key in ("max_steps", "eval_steps", "sample_every", "early_stopping_patience", "seed"):
        _check(getattr(cfg, key) >= 0, key, getattr(cfg, key), "an integer >= 0")
    _check(math.isfinite(cfg.lr) and 0 < cfg.lr < 1, "lr", cfg.lr, "a number between 0 and 1 (e.g. 2e-4)")
    _check(math.isfinite(cfg.epochs) and cfg.epochs > 0, "epochs", cfg.epochs, "a number > 0")
    _check(0 <= cfg.warmup_ratio < 1, "warmup_ratio", cfg.warmup_ratio, "0 <= warmup_ratio < 1")
    _check(0 <= cfg.eval_split < 1, "eval_split", cfg.eval_split, "0 <= eval_split < 1")
    _check(0 <= cfg.weight_decay <= 1, "weight_decay", cfg.weight_decay, "0 <= weight_decay <= 1")
    _check(0 <= cfg.lora_dropout < 1, "lora_dropout", cfg.lora_dropout, "0 <= lora_dropout < 1")
    _check(cfg.max_grad_norm >= 0, "max_grad_norm", cfg.max_grad_norm, "a number >= 0 (0 disables clipping)")
    _check(cfg.lora_alpha >= 1, "lora_alpha", cfg.lora_alpha, "an integer >= 1")
    _check(bool(cfg.model.strip()), "model", cfg.model, "a hub id, a model directory or a .gguf file")
    _check(bool(cfg.data.strip()), "data", cfg.data, "a data file, a directory or glob of them, or hf:ORG/NAME")
    from cockpit.data.formats import DATA_FORMATS

    from cockpit.training.speedups import ATTENTIONS, KERNELS, PACKING

    _check(cfg.packing in PACKING, "packing", cfg.packing, " | ".join(PACKING))
    _check(cfg.kernels in KERNELS, "kernels", cfg.kernels, " | ".join(KERNELS))
    _check(cfg.attn in ATTENTIONS, "attn", cfg.attn, " | ".join(ATTENTIONS))
    from cockpit.training.trackers import TRACKERS, unknown_trackers

    _check(not unknown_trackers(cfg.report_to), "report_to", cfg.report_to,
           " | ".join(TRACKERS) + " (several comma-separated), or none")
    _check(cfg.data_format in DATA_FORMATS, "data_format", cfg.data_format, " | ".join(DATA_FORMATS))
    _check(bool(cfg.data_split.strip()), "data_split", cfg.data_split, "a split name such as train")
    if cfg.uses_lora:
        _check(bool(cfg.lora_target_modules), "lora_target_modules", cfg.lora_target_modules,
               "a comma-separated list such as q_proj,v_proj")
    if cfg.run_name is not None:

        _check(bool(RUN_NAME_RE.match(cfg.run_name)), "run_name", cfg.run_name,
               "letters, digits, '.', '_' or '-'")


class _ConfigDumper(yaml.SafeDumper):
    """PyYAML writes NEL (U+0085) raw in a quoted scalar, where its reader folds it into a
    space: strings holding one are written double-quoted, where it is escaped (``\\N``)."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if "\x85" in value else None)


_ConfigDumper.add_representer(str, _represent_str)


def config_to_yaml(cfg: TrainConfig, header: str | None = None) -> str:
    """The YAML written as ``config_used.yaml`` (field order kept)."""
    text = yaml.dump(cfg.to_dict(), Dumper=_ConfigDumper, sort_keys=False, allow_unicode=True, width=100)
    return (header or "") + text


def load_config_file(path: str | os.PathLike[str]) -> TrainConfig:
    """Read a saved ``config_used.yaml`` (no preset underneath: it is already complete)."""
    return config_from_dict(_load_yaml_mapping(Path(path), "config"))
