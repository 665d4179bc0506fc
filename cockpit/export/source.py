"""What an export starts from: a finished run directory, read once into :class:`RunSource`.

A run's ``model/`` holds either a PEFT adapter (methods lora, int8, qlora: an
``adapter_config.json`` beside ``adapter_model.safetensors`` and the tokenizer) or a
complete model (method full). The base model of an adapter is the config's ``model``,
resolved the same way training resolved it (:func:`cockpit.models.sources.resolve_model`).
"""

from __future__ import annotations

import json
import logging
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.config import TrainConfig
from cockpit.errors import CockpitError
from cockpit.run_config import load_run_config
from cockpit.run.rundir import CONFIG_FILE, EVENTS_FILE, EXPORT_DIR, MODEL_DIR
from cockpit.run.status import effective_status

log = logging.getLogger(__name__)

# Used only when a run has neither configured probe prompts nor recorded samples.
FALLBACK_PROBES = ["What can you help me with?", "Explain what you were trained to do in one sentence."]


@dataclass
class RunSource:
    """Everything the export steps need to know about one run."""

    run_dir: Path
    cfg: TrainConfig
    state: str
    model_dir: Path
    is_adapter: bool
    probes: list[str] = field(default_factory=list)
    final_loss: float | None = None

    @property
    def export_dir(self) -> Path:
        return self.run_dir / EXPORT_DIR

    @property
    def method(self) -> str:
        return self.cfg.method

    @property
    def system_prompt(self) -> str | None:
        return self.cfg.system_prompt or None

    def default_name(self) -> str:
        """A model name derived from the run directory (valid for Ollama and file names)."""
        name = re.sub(r"[^a-z0-9._-]+", "-", self.run_dir.name.lower()).strip("-._")
        return f"cockpit-{name}"[:64].rstrip("-._") or "cockpit-model"


def load_run(run_dir: str | Path, require_finished: bool = True) -> RunSource:
    """Read a run directory; raise :class:`CockpitError` when it cannot be exported."""
    run_dir = Path(run_dir).resolve()
    cfg_path = run_dir / CONFIG_FILE
    if not cfg_path.is_file():
        raise CockpitError(f"{run_dir} has no {CONFIG_FILE}", "give a run directory made by llm-cockpit train")
    cfg = load_run_config(run_dir)
    status = effective_status(run_dir)
    state = str(status.get("state", "unknown"))
    model_dir = run_dir / MODEL_DIR
    if require_finished and state != "finished":
        hint = (f"wait for it to finish (llm-cockpit attach {run_dir.name})" if state in ("starting", "running")
                else f"resume it with: llm-cockpit resume {run_dir.name}")
        raise CockpitError(f"run {run_dir.name} is {state}, not finished: its final model is not saved yet", hint)
    if not model_dir.is_dir():
        raise CockpitError(f"run {run_dir.name} has no model/ directory", "the trainer saves it when a run finishes")
    is_adapter = (model_dir / "adapter_config.json").is_file()
    if not is_adapter and not (model_dir / "config.json").is_file():
        raise CockpitError(f"{model_dir} holds neither a LoRA adapter nor a full model",
                           "re-run training; the final save did not complete")
    loss = status.get("loss")
    return RunSource(run_dir=run_dir, cfg=cfg, state=state, model_dir=model_dir, is_adapter=is_adapter,
                     probes=probe_prompts(run_dir, cfg),
                     final_loss=float(loss) if isinstance(loss, (int, float)) else None)


def probe_prompts(run_dir: Path, cfg: TrainConfig) -> list[str]:
    """The prompts the run watched during training: the configured ones, else the prompts
    of its recorded ``sample`` events, else two generic questions."""
    if cfg.sample_prompts:
        return list(cfg.sample_prompts)
    seen: dict[str, None] = {}
    events = run_dir / EVENTS_FILE
    if events.is_file():
        from cockpit.run.events import iter_dicts

        for data in iter_dicts(events):
            if data.get("type") == "sample" and isinstance(data.get("prompt"), str):
                seen.setdefault(data["prompt"], None)
    return list(seen) or list(FALLBACK_PROBES)


def base_model_dir(source: RunSource) -> Path:
    """The base model directory of an adapter run (resolved like training did)."""
    from cockpit.models.sources import resolve_model

    return resolve_model(source.cfg.model).path


def tokenizer_dir(source: RunSource, base_dir: Path | None) -> Path:
    """Where the tokenizer lives: the run's model/ (the trainer saves it there), else the base."""
    if any((source.model_dir / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        return source.model_dir
    if base_dir is None:
        raise CockpitError(f"{source.model_dir} has no tokenizer files", "re-run training; the final save did not complete")
    return base_dir


def safetensors_header(path: Path) -> dict[str, Any]:
    """The tensor table of a .safetensors file (names, dtypes, shapes) without reading weights."""
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        if size > 100_000_000:
            raise CockpitError(f"{path} does not look like a safetensors file", "re-save the model")
        header = json.loads(fh.read(size))
    header.pop("__metadata__", None)
    return header


def weight_files(model_dir: Path) -> list[Path]:
    """The safetensors shards of a model directory."""
    return sorted(Path(model_dir).glob("*.safetensors"))


DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def weights_summary(model_dir: Path) -> tuple[int, int, str]:
    """(parameter count, bytes on disk, dominant dtype) read from safetensors headers only."""
    params = 0
    nbytes = 0
    by_dtype: dict[str, int] = {}
    for f in weight_files(model_dir):
        for meta in safetensors_header(f).values():
            n = 1
            for d in meta.get("shape", []):
                n *= int(d)
            params += n
            by_dtype[meta.get("dtype", "F32")] = by_dtype.get(meta.get("dtype", "F32"), 0) + n
            nbytes += n * DTYPE_BYTES.get(meta.get("dtype", "F32"), 4)
    dominant = max(by_dtype, key=by_dtype.get) if by_dtype else "F32"
    return params, nbytes, dominant


def embedding_rows(model_dir: Path) -> int | None:
    """Rows of the input embedding matrix, from the safetensors headers."""
    for f in weight_files(model_dir):
        for name, meta in safetensors_header(f).items():
            if name.endswith(("embed_tokens.weight", "wte.weight", "word_embeddings.weight")):
                shape = meta.get("shape") or [0]
                return int(shape[0])
    return None
