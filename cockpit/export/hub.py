"""Publishing to the Hugging Face Hub: the adapter (or the merged model) with a model card.

The token comes only from the environment (``HF_TOKEN``) or the stored ``hf auth login``;
huggingface_hub reads it itself and llm-cockpit never writes it anywhere. ``--dry-run``
lists the files and prints the card without touching the network.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.config import BUNDLED_MODEL
from cockpit.errors import CockpitError
from cockpit.run_config import typed_or_bundled
from cockpit.run.atomic import read_json_object
from cockpit.export.source import RunSource

_REPO_RE = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_CARD_CONFIG_KEYS = ("method", "epochs", "max_steps", "batch_size", "grad_accum", "lr", "lr_scheduler",
                     "warmup_ratio", "weight_decay", "max_length", "lora_r", "lora_alpha", "lora_dropout",
                     "lora_target_modules", "precision", "seed")
# README.md is replaced by our card; training_args.bin is a pickle of local trainer settings.
_NOT_UPLOADED = {"README.md", "training_args.bin"}
Say = Callable[[str, float | None], None]


@dataclass
class HubPlan:
    """What ``--to hf`` uploads: ``folder``'s files plus a README.md holding ``card``."""

    repo_id: str
    kind: str  # adapter | merged | full
    folder: Path
    files: list[dict[str, Any]] = field(default_factory=list)
    card: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"repo_id": self.repo_id, "kind": self.kind, "folder": str(self.folder), "files": self.files,
                "card": self.card}


def validate_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` when the Hub accepts it as ``[owner/]name``, else raise."""
    if not _REPO_RE.match(repo_id or "") or ".." in repo_id or repo_id.endswith((".git", ".")):
        raise CockpitError(f"{repo_id!r} is not a valid Hugging Face repository id",
                           "use owner/name (or just name for your own account), letters, digits, '.', '_', '-'")
    return repo_id


def base_model_id(spec: str) -> str | None:
    """The hub id of the base model for the card's metadata (None for local paths)."""
    from cockpit.models.sources import is_bundled

    if is_bundled(spec):
        return BUNDLED_MODEL
    if Path(spec).expanduser().exists() or spec.endswith(".gguf"):
        return None
    return spec if re.match(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$", spec) else None


def _count_examples(data: str | None) -> int | None:
    if not data:
        return None
    for path in (Path(data), Path(typed_or_bundled(data))):
        if path.is_file():
            with open(path, encoding="utf-8", errors="replace") as fh:
                return sum(1 for line in fh if line.strip())
    return None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def eval_table(eval_data: dict[str, Any]) -> str:
    """A Markdown table of the numbers in ``eval.json``: one column per evaluated model
    when it holds several (e.g. the fine-tuned model and its baseline), else one."""
    columns = {k: v for k, v in eval_data.items() if isinstance(v, dict)
               and any(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v.values())}
    if not columns:
        columns = {"value": eval_data}
    metrics: list[str] = []
    for values in columns.values():
        for k, v in values.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in metrics:
                metrics.append(k)
    if not metrics:
        return ""
    head = "| metric | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns) + "\n"
    rows = "".join(f"| {m} | " + " | ".join(_fmt(c.get(m, "")) if m in c else "" for c in columns.values()) + " |\n"
                   for m in metrics)
    return head + rows


def model_card(source: RunSource, repo_id: str, kind: str) -> str:
    """The README.md: metadata, base model, data summary, configuration, evaluation, usage."""
    cfg = source.cfg
    base = base_model_id(cfg.model)
    meta = ["---"]
    if base:
        meta.append(f"base_model: {base}")
    meta += [f"library_name: {'peft' if kind == 'adapter' else 'transformers'}", "pipeline_tag: text-generation",
             "tags:", "- llm-cockpit", f"- {cfg.method}", "---", ""]
    name = repo_id.split("/")[-1]
    what = {"adapter": f"a LoRA adapter ({cfg.method}, r={cfg.lora_r}, alpha={cfg.lora_alpha})",
            "merged": f"the base model with its LoRA adapter ({cfg.method}) merged in",
            "full": "a fully fine-tuned model"}[kind]
    lines = [f"# {name}", "", f"This repository holds {what}, trained with llm-cockpit.", "",
             "## Base model", "", f"`{base or cfg.model}`" + (" (the copy bundled with llm-cockpit: "
                                                              "SmolLM2-135M-Instruct from a Q4_1 GGUF, dequantized)"
                                                              if cfg.model.lower() in ("smollm2-135m", "bundled")
                                                              or base == BUNDLED_MODEL else ""), ""]
    n_train = _count_examples(cfg.data)
    n_eval = _count_examples(cfg.eval_data)
    lines += ["## Data", "", f"- training file: `{Path(cfg.data).name}`" + (f" ({n_train} examples)" if n_train else "")]
    if cfg.eval_data:
        lines.append(f"- evaluation file: `{Path(cfg.eval_data).name}`" + (f" ({n_eval} examples)" if n_eval else ""))
    elif cfg.eval_split:
        lines.append(f"- evaluation: {cfg.eval_split:.0%} of the training file held out")
    if cfg.system_prompt:
        lines.append(f"- system prompt: \"{cfg.system_prompt}\"")
    lines += ["", "## Training configuration", "", "| setting | value |", "|---|---|"]
    for key in _CARD_CONFIG_KEYS:
        if key.startswith("lora_") and kind == "full":
            continue
        lines.append(f"| {key} | {_fmt(getattr(cfg, key))} |")
    if source.final_loss is not None:
        lines.append(f"| final training loss | {source.final_loss:.4f} |")
    table = eval_table(read_json_object(source.run_dir / "eval.json"))
    lines += ["", "## Evaluation", ""]
    lines += [table] if table else ["No evaluation was recorded for this run (llm-cockpit eval writes eval.json).", ""]
    lines += ["## Use", "", "```python"]
    if kind == "adapter":
        lines += ["from peft import AutoPeftModelForCausalLM", "from transformers import AutoTokenizer", "",
                  f'model = AutoPeftModelForCausalLM.from_pretrained("{repo_id}")',
                  f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")']
    else:
        lines += ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  f'model = AutoModelForCausalLM.from_pretrained("{repo_id}")',
                  f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")']
    lines += ["```", ""]
    return "\n".join(meta + lines)


def plan_upload(source: RunSource, repo_id: str, folder: Path, kind: str) -> HubPlan:
    """List the files of ``folder`` that would go up, and write the card's text."""
    validate_repo_id(repo_id)
    files = [{"path": p.name, "bytes": p.stat().st_size} for p in sorted(folder.iterdir())
             if p.is_file() and not p.name.startswith(".") and p.name not in _NOT_UPLOADED]
    card = model_card(source, repo_id, kind)
    files.append({"path": "README.md", "bytes": len(card.encode("utf-8"))})
    return HubPlan(repo_id=repo_id, kind=kind, folder=folder, files=files, card=card)


def upload(plan: HubPlan, private: bool = True, say: Say | None = None) -> str:
    """Create the repository (private unless asked otherwise) and upload; returns its URL."""
    say = say or (lambda msg, frac: None)
    try:
        from huggingface_hub import HfApi, get_token
    except ImportError as exc:
        raise CockpitError("huggingface_hub is not installed", "pip install huggingface_hub") from exc
    if not get_token():
        raise CockpitError("no Hugging Face token found", "set HF_TOKEN or run: hf auth login (then export again)")
    staging = Path(tempfile.mkdtemp(prefix="cockpit-hub-"))
    try:
        for f in plan.files:
            if f["path"] != "README.md":
                os.symlink((plan.folder / f["path"]).resolve(), staging / f["path"])
        (staging / "README.md").write_text(plan.card, encoding="utf-8")
        api = HfApi()
        try:
            say(f"creating {plan.repo_id} on the Hub", None)
            url = api.create_repo(plan.repo_id, repo_type="model", private=private, exist_ok=True)
            say(f"uploading {len(plan.files)} files", None)
            api.upload_folder(folder_path=str(staging), repo_id=str(getattr(url, "repo_id", plan.repo_id)),
                              repo_type="model", commit_message="Upload from llm-cockpit")
        except Exception as exc:
            text = str(exc).strip().splitlines()
            offline = type(exc).__name__ == "OfflineModeIsEnabled"
            raise CockpitError(f"upload to the Hugging Face Hub failed ({type(exc).__name__}"
                               f"{': ' + text[0][:200] if text else ''})",
                               "unset HF_HUB_OFFLINE to allow the upload" if offline else
                               "check your network and token (hf auth whoami); --dry-run shows what would be sent"
                               ) from exc
        return str(url)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
