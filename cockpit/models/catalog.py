"""Model architecture numbers for planning, without downloading any weights.

Where a model's numbers come from, in order:

1. the catalog ``presets/models.yaml`` (ids and aliases, case-insensitive);
2. a local model directory: its ``config.json``;
3. a local ``.gguf`` file: its metadata header (read with the ``gguf`` package);
4. a hub id: its ``config.json`` only, from the Hugging Face cache, else fetched with one
   short request (never the weights). Offline, an unknown id is one clear error.

Everything returns a :class:`ModelSpec`; the memory estimator needs nothing else. This
module imports neither torch nor transformers.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import struct
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from cockpit.errors import CockpitError
from cockpit.paths import PRESETS_DIR

CATALOG_PATH = PRESETS_DIR / "models.yaml"
KINDS = ("base", "instruct", "code", "code-instruct")
ARCHS = ("llama", "qwen2", "mistral", "gemma2")
_ARCH_NUMBERS = ("params", "layers", "hidden", "intermediate", "heads", "kv_heads", "vocab")
HUB_MODEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
"""A Hugging Face model id, ORG/NAME (what may be looked up or downloaded)."""
HUB_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ModelSpec:
    """The architecture of a decoder-only transformer, as the memory estimator sees it."""

    id: str
    arch: str  # llama | qwen2 | mistral | gemma2 (other decoders are planned as llama)
    params: int  # total parameter count (published, or computed for local models)
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool  # the output layer shares the input embedding matrix
    dtype: str = "bfloat16"  # dtype of the published weights
    head_dim_: int | None = None  # None: hidden // heads
    kind: str = "base"
    family: str = ""
    variant_of: str | None = None
    aliases: tuple[str, ...] = ()
    gated: bool = False
    source: str = "catalog"  # catalog | config | gguf | run (a finished run's result)

    @property
    def head_dim(self) -> int:
        return self.head_dim_ or self.hidden // self.heads

    @property
    def q_dim(self) -> int:
        """Width of the concatenated query heads (= hidden for most models, not for Gemma 2)."""
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of the key (and of the value) projection; smaller than q_dim under GQA."""
        return self.kv_heads * self.head_dim

    @property
    def attn_bias(self) -> bool:
        return self.arch == "qwen2"

    @property
    def norms_per_layer(self) -> int:
        return 4 if self.arch == "gemma2" else 2

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """``(in_features, out_features)`` of each projection in one decoder layer."""
        h, q, kv, i = self.hidden, self.q_dim, self.kv_dim, self.intermediate
        return {
            "q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h),
        }

    @property
    def linear_params(self) -> int:
        """Parameters in the decoder layers' projections (what INT8/NF4 quantize)."""
        per_layer = sum(a * b for a, b in self.linear_shapes().values())
        return self.layers * per_layer

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def lm_head_params(self) -> int:
        """Parameters of a separate output layer (0 when tied to the embeddings)."""
        return 0 if self.tied else self.vocab * self.hidden

    def computed_params(self) -> int:
        """The parameter count implied by the architecture (biases and norms included)."""
        bias = (self.q_dim + 2 * self.kv_dim) if self.attn_bias else 0
        norms = self.layers * self.norms_per_layer * self.hidden + self.hidden
        return self.linear_params + self.layers * bias + norms + self.embedding_params + self.lm_head_params

    @property
    def other_params(self) -> int:
        """Everything that stays in 16/32-bit under quantization: embeddings, head, norms, biases."""
        return self.params - self.linear_params

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("head_dim_", "aliases")}
        return {**d, "head_dim": self.head_dim}


@dataclass
class _Catalog:
    specs: dict[str, ModelSpec] = field(default_factory=dict)  # by id
    index: dict[str, str] = field(default_factory=dict)  # lower-case id or alias -> id


@functools.cache
def _load(path: str) -> _Catalog:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CockpitError(f"cannot read the model catalog {path} ({exc})", "restore presets/models.yaml") from exc
    raw = (data or {}).get("models") if isinstance(data, dict) else None
    if not isinstance(raw, dict):
        raise CockpitError(f"{path}: no 'models:' mapping", "restore presets/models.yaml")
    cat = _Catalog()
    for model_id in raw:
        spec = _entry(model_id, raw, path, seen=())
        cat.specs[model_id] = spec
        for name in (model_id, *spec.aliases):
            key = name.lower()
            if key in cat.index and cat.index[key] != model_id:
                raise CockpitError(f"{path}: name {name!r} is used by two models", "make aliases unique")
            cat.index[key] = model_id
    return cat


def _entry(model_id: str, raw: dict, path: str, seen: tuple[str, ...]) -> ModelSpec:
    """One catalog entry with the numbers inherited from ``variant_of`` filled in."""
    entry = raw[model_id] or {}
    if not isinstance(entry, dict):
        raise CockpitError(f"{path}: entry {model_id!r} is not a mapping", "see the header of models.yaml")
    merged: dict[str, Any] = {}
    parent = entry.get("variant_of")
    if parent is not None:
        if parent not in raw or parent in seen:
            raise CockpitError(f"{path}: {model_id} is a variant of unknown or circular {parent!r}",
                               "variant_of must name another entry")
        merged.update(_entry(parent, raw, path, (*seen, model_id)).to_dict())
    merged.update(entry)
    missing = [k for k in (*_ARCH_NUMBERS, "tied", "kind", "arch") if k not in merged]
    if missing:
        raise CockpitError(f"{path}: {model_id} lacks {', '.join(missing)}", "copy the numbers from its config.json")
    if merged["kind"] not in KINDS or merged["arch"] not in ARCHS:
        raise CockpitError(f"{path}: {model_id} has kind {merged['kind']!r} / arch {merged['arch']!r}",
                           f"kind: {' | '.join(KINDS)}; arch: {' | '.join(ARCHS)}")
    for key in _ARCH_NUMBERS:
        if not isinstance(merged[key], int) or merged[key] < 1:
            raise CockpitError(f"{path}: {model_id}.{key} must be a positive integer", "fix the entry")
    return ModelSpec(
        id=model_id, arch=merged["arch"], params=merged["params"], layers=merged["layers"],
        hidden=merged["hidden"], intermediate=merged["intermediate"], heads=merged["heads"],
        kv_heads=merged["kv_heads"], vocab=merged["vocab"], tied=bool(merged["tied"]),
        dtype=str(merged.get("dtype", "bfloat16")), head_dim_=merged.get("head_dim"),
        kind=merged["kind"], family=str(merged.get("family", "")), variant_of=parent,
        aliases=tuple(str(a) for a in entry.get("aliases", ())), gated=bool(merged.get("gated", False)),
        source="catalog",
    )


def load_catalog(path: Path | None = None) -> dict[str, ModelSpec]:
    """Every catalog entry by hub id, variants resolved (cached after the first call)."""
    return dict(_load(str(path or CATALOG_PATH)).specs)


def lookup(name: str) -> ModelSpec | None:
    """The catalog entry for an id or alias (case-insensitive), or None."""
    cat = _load(str(CATALOG_PATH))
    model_id = cat.index.get(str(name).strip().lower())
    return cat.specs[model_id] if model_id else None


def base_of(spec: ModelSpec) -> ModelSpec | None:
    """The base model a variant descends from (following ``variant_of``), None for a base."""
    cat = _load(str(CATALOG_PATH))
    current, hops = spec, 0
    while current.variant_of and hops < 8:
        current = cat.specs[current.variant_of]
        hops += 1
    return current if current.id != spec.id else None


def smaller_models(spec: ModelSpec) -> list[ModelSpec]:
    """Catalog models of the same family and kind with fewer parameters, largest first."""
    family = spec.family or (lookup(spec.variant_of).family if spec.variant_of and lookup(spec.variant_of) else "")
    found = [s for s in load_catalog().values()
             if family and s.family == family and s.kind == spec.kind and s.params < spec.params]
    return sorted(found, key=lambda s: -s.params)


def resolve_spec(model: str, *, network: bool = True, timeout: float = HUB_TIMEOUT_S) -> ModelSpec:
    """The architecture of ``model``: a catalog id or alias, a directory, a .gguf file or a hub id.

    Raises :class:`CockpitError` (one line) when it cannot be found or read.
    """
    name = str(model).strip()
    if not name:
        raise CockpitError("no model given", "name a catalog model such as Qwen/Qwen2.5-0.5B (llm-cockpit plan --list)")
    spec = lookup(name)
    if spec is not None:
        return spec
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config_used.yaml").is_file() and not (path / "config.json").is_file():
        return _run_spec(path, network=network, timeout=timeout)
    if path.is_dir():
        if (path / "config.json").is_file():
            return spec_from_config(read_model_config(path / "config.json"), str(path))
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return spec_from_gguf(ggufs[0])
        raise CockpitError(f"{path} has no config.json", "point at a Hugging Face model directory or a .gguf file")
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise CockpitError(f"model file {path} does not exist", "check the path")
        return spec_from_gguf(path)
    if not HUB_MODEL_ID_RE.match(name) or name.startswith((".", "/", "~")):
        raise CockpitError(f"model {name!r} is not in the catalog, not a local path and not a hub id",
                           "give a catalog name (llm-cockpit plan --list), a model directory, a .gguf file or owner/name")
    return spec_from_config(_hub_config(name, network=network, timeout=timeout), name)


def _run_spec(run_dir: Path, *, network: bool, timeout: float) -> ModelSpec:
    """A finished run of ours (``model=RUN``, ``cockpit.training.chaining``): the architecture of the
    model it trained, which its result keeps (an adapter adds no shape the estimate needs)."""
    import dataclasses

    from cockpit.run_config import load_run_config

    base = load_run_config(run_dir).model
    if Path(base).expanduser().resolve() == run_dir.resolve():
        raise CockpitError(f"run {run_dir.name} names itself as its model", "train it again from a model")
    spec = resolve_spec(base, network=network, timeout=timeout)
    return dataclasses.replace(spec, id=str(run_dir), aliases=(), source="run")


def read_model_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CockpitError(f"{path} is not a readable JSON config", "is it a model directory?") from exc
    if not isinstance(data, dict):
        raise CockpitError(f"{path} is not a model config (not a JSON object)", "is it a model directory?")
    return data


def _hub_config(repo_id: str, *, network: bool, timeout: float) -> dict[str, Any]:
    """config.json of a hub model: the local HF cache first, then one short request."""
    try:
        from huggingface_hub import hf_hub_download

        return read_model_config(Path(hf_hub_download(repo_id, "config.json", local_files_only=True)))
    except CockpitError:
        raise
    except Exception:  # noqa: BLE001, S110 - not cached (or no huggingface_hub): try the network
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    why = "offline mode (HF_HUB_OFFLINE)" if offline else "network lookups disabled"
    if network and not offline:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        request = urllib.request.Request(f"{endpoint}/{repo_id}/resolve/main/config.json")
        token = _hf_token()
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                data = json.loads(response.read(1_000_000).decode("utf-8"))
            if isinstance(data, dict):
                return data
            why = "its config.json is not a JSON object"
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise CockpitError(f"model {repo_id!r} is gated on the Hub (HTTP {exc.code})",
                                   "accept its license on huggingface.co and log in (hf auth login) or set HF_TOKEN") from exc
            why = f"the Hub answered HTTP {exc.code}" + (" (no such model)" if exc.code == 404 else "")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            why = f"the Hub is unreachable ({str(reason)[:80]})"
    raise CockpitError(f"model {repo_id!r} is not in the catalog and its config.json could not be read: {why}",
                       "check the id, connect once to fetch it, or plan a catalog model (llm-cockpit plan --list)")


def _hf_token() -> str | None:
    try:
        from huggingface_hub import get_token  # HF_TOKEN first, then the saved login

        return get_token()
    except Exception:  # noqa: BLE001 - no token is fine for public models
        return os.environ.get("HF_TOKEN")


def spec_from_config(cfg: dict[str, Any], model_id: str) -> ModelSpec:
    """A :class:`ModelSpec` from a transformers ``config.json`` mapping."""
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    try:
        hidden = int(text["hidden_size"])
        heads = int(text["num_attention_heads"])
        spec = ModelSpec(
            id=model_id, arch=_arch(str(text.get("model_type", cfg.get("model_type", "llama")))), params=0,
            layers=int(text["num_hidden_layers"]), hidden=hidden, intermediate=int(text["intermediate_size"]),
            heads=heads, kv_heads=int(text.get("num_key_value_heads") or heads), vocab=int(text["vocab_size"]),
            tied=bool(cfg.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
            dtype=str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32"),
            head_dim_=int(text["head_dim"]) if text.get("head_dim") else None,
            kind=_kind_from_name(model_id), source="config",
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CockpitError(f"{model_id}: config.json lacks decoder numbers ({exc})",
                           "only decoder-only language models (Llama, Qwen2, Mistral, Gemma 2 style) can be planned") from exc
    return replace(spec, params=spec.computed_params())


def _arch(model_type: str) -> str:
    model_type = model_type.lower()
    return model_type if model_type in ARCHS else "llama"


def _kind_from_name(name: str) -> str:
    low = name.lower()
    code = "code" in low or "coder" in low
    instruct = any(w in low for w in ("instruct", "-it", "chat"))
    return "code-instruct" if code and instruct else "code" if code else "instruct" if instruct else "base"


def spec_from_gguf(path: Path) -> ModelSpec:
    """A :class:`ModelSpec` from a GGUF file's header (key/values and tensor shapes; no weights read)."""
    try:
        meta, tensors = read_gguf_header(path)
    except (OSError, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise CockpitError(f"{path} is not a readable GGUF model file ({exc})",
                           "give a .gguf file exported by llama.cpp, a model directory or a hub id") from exc
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not tensors:
        raise CockpitError(f"{path} has no architecture or no tensors: not a language model GGUF",
                           "give a model .gguf (for example one exported by llama.cpp)")
    try:
        hidden = int(meta[f"{arch}.embedding_length"])
        heads = int(meta[f"{arch}.attention.head_count"])
        kv = meta.get(f"{arch}.attention.head_count_kv")
        key_len = meta.get(f"{arch}.attention.key_length")
        name = f"{meta.get('general.name', '')} {meta.get('general.finetune', '')} {path.name}"
        spec = ModelSpec(
            id=str(path), arch=_arch(arch), params=sum(tensors.values()),
            layers=int(meta[f"{arch}.block_count"]), hidden=hidden,
            intermediate=int(meta[f"{arch}.feed_forward_length"]), heads=heads,
            kv_heads=int(kv) if kv else heads,
            vocab=int(meta.get(f"{arch}.vocab_size") or meta.get("tokenizer.ggml.tokens") or 0),
            tied="output.weight" not in tensors, dtype="float32",  # materialized dequantized to fp32
            head_dim_=int(key_len) if key_len and int(key_len) != hidden // heads else None,
            kind=_kind_from_name(name), source="gguf",
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CockpitError(f"{path}: GGUF metadata lacks the {arch} architecture numbers ({exc})",
                           "only decoder-only language models can be planned") from exc
    if spec.vocab < 1 or spec.layers < 1:
        raise CockpitError(f"{path}: GGUF metadata has no vocabulary or layers", "is it a language model?")
    return spec


# GGUF value types (the format's spec): id -> struct code; 8 = string, 9 = array.
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def read_gguf_header(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The key/values (arrays as their length) and ``tensor name -> element count`` of a GGUF file.

    A hand-rolled reader of the header only: the ``gguf`` package parses every tokenizer
    string into numpy objects, which takes seconds; planning needs only the numbers.
    """
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError("no GGUF magic number")
        (version,) = struct.unpack("<I", f.read(4))
        if version < 2:
            raise ValueError(f"GGUF version {version} is too old")
        n_tensors, n_kv = struct.unpack("<QQ", f.read(16))
        if n_tensors > 1_000_000 or n_kv > 1_000_000:
            raise ValueError("implausible header counts")

        def string() -> str:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 10_000_000:
                raise ValueError("implausible string length")
            return f.read(n).decode("utf-8")

        def value(vtype: int) -> Any:
            if vtype in _GGUF_SCALARS:
                code = _GGUF_SCALARS[vtype]
                return struct.unpack("<" + code, f.read(struct.calcsize(code)))[0]
            if vtype == 8:
                return string()
            if vtype == 9:
                (etype,) = struct.unpack("<I", f.read(4))
                (count,) = struct.unpack("<Q", f.read(8))
                if etype in _GGUF_SCALARS:
                    f.seek(count * struct.calcsize(_GGUF_SCALARS[etype]), os.SEEK_CUR)
                elif etype == 8:
                    for _ in range(count):
                        (n,) = struct.unpack("<Q", f.read(8))
                        f.seek(n, os.SEEK_CUR)
                else:
                    raise ValueError(f"unsupported GGUF array type {etype}")
                return count
            raise ValueError(f"unknown GGUF value type {vtype}")

        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = string()
            (vtype,) = struct.unpack("<I", f.read(4))
            meta[key] = value(vtype)
        tensors: dict[str, int] = {}
        for _ in range(n_tensors):
            name = string()
            (n_dims,) = struct.unpack("<I", f.read(4))
            dims = struct.unpack(f"<{n_dims}Q", f.read(8 * n_dims))
            f.read(12)  # ggml type (uint32) and data offset (uint64)
            tensors[name] = math.prod(dims)
    return meta, tensors
