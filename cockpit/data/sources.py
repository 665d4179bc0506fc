"""Where training data comes from: a file, a directory or glob of files, a dataset saved
with ``datasets.save_to_disk``, or a Hugging Face Hub dataset (``hf:ORG/NAME[:SPLIT]``).

:func:`resolve_source` turns what the user typed into a :class:`Source` (or one line
saying why it cannot be), and :func:`source_fingerprint` identifies its content cheaply
(paths, sizes and modification times; a hub dataset's revision), which is what the
tokenized-data cache is keyed on.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from cockpit.errors import CockpitError

HUB_PREFIX = "hf:"
# file type by name; .gz is read through gzip for the text types
FILE_TYPES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
              ".parquet": "parquet", ".pq": "parquet"}
SUPPORTED = "JSONL, JSON, CSV, TSV or Parquet"
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_GLOB_CHARS = set("*?[")


@dataclass
class Source:
    """A resolved data source."""

    spec: str
    """What the user typed."""
    kind: str
    """``files``, ``saved`` (a ``save_to_disk`` directory) or ``hub``."""
    files: list[Path] = field(default_factory=list)
    """The data files (kind ``files``), in a stable order."""
    path: Path | None = None
    """The directory of a saved dataset."""
    repo: str | None = None
    """The hub dataset id (kind ``hub``)."""
    split: str = "train"
    subset: str | None = None

    @property
    def label(self) -> str:
        """How problems name the source: the file, else the spec with its split."""
        if self.kind == "files" and len(self.files) == 1:
            return str(self.files[0])
        if self.kind == "hub":
            return f"{HUB_PREFIX}{self.repo}[{self.split}]"
        if self.kind == "saved":
            return f"{self.path}[{self.split}]"
        return self.spec

    @property
    def single_file(self) -> bool:
        return self.kind == "files" and len(self.files) == 1


def file_type(path: Path) -> str | None:
    """``jsonl``/``json``/``csv``/``tsv``/``parquet`` from the name (``.gz`` ignored), else None."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return FILE_TYPES.get(suffixes[-1]) if suffixes else None


def is_hub_spec(spec: str) -> bool:
    return spec.strip().startswith(HUB_PREFIX)


def parse_hub_spec(spec: str) -> tuple[str, str | None]:
    """``hf:org/name:split`` -> (``org/name``, ``split``)."""
    rest = spec.strip()[len(HUB_PREFIX):]
    repo, _, split = rest.partition(":")
    if not _REPO_RE.match(repo):
        raise CockpitError(f"{spec!r} is not a hub dataset id", "write it like data=hf:org/name (or hf:org/name:test)")
    return repo, split or None


def resolve_source(spec: str, *, split: str | None = None, subset: str | None = None) -> Source:
    """What ``spec`` names; CockpitError (one line) when it names nothing usable.

    A directory of data files takes the files of ``split`` when their names say which split
    they are (``train.jsonl``/``test.jsonl``, ``data/train-0000.parquet``: the Hugging Face
    convention), else all of them.
    """
    spec = str(spec).strip()
    if is_hub_spec(spec):
        repo, own_split = parse_hub_spec(spec)
        return Source(spec, "hub", repo=repo, split=own_split or split or "train", subset=subset)
    path = Path(spec).expanduser()
    if not path.exists() and _GLOB_CHARS & set(spec):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        data = [f for f in files if file_type(f)]
        if not data:
            what = f"only {', '.join(f.name for f in files[:3])}" if files else "nothing"
            raise CockpitError(f"data pattern {spec} matches {what}", f"the pattern must match {SUPPORTED} files")
        return Source(spec, "files", files=data, split=split or "train")
    if not path.exists():
        raise CockpitError(f"data file {path} does not exist",
                           f"check the path ({SUPPORTED} file, a directory or glob of them, or hf:ORG/NAME)")
    if path.is_dir():
        if is_saved_dataset(path):
            return Source(spec, "saved", path=path, split=split or "train")
        return Source(spec, "files", files=_directory_files(path, split or "train"), split=split or "train")
    return Source(spec, "files", files=[path], split=split or "train")


def is_saved_dataset(path: Path) -> bool:
    """A directory written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file())


# A file's split, from its name or its folder's (the Hugging Face convention: train.jsonl,
# data/test-00000.parquet, dev.csv).
SPLIT_WORDS = {"train": ("train", "training"), "validation": ("validation", "valid", "val", "dev"),
               "test": ("test", "testing", "eval", "evaluation")}
_MAX_SCAN = 10_000


def _split_of(path: Path, root: Path) -> str | None:
    names = [path.name.split(".")[0], *(p.name for p in path.relative_to(root).parents if p.name)]
    for split, words in SPLIT_WORDS.items():
        for name in names:
            if any(re.search(rf"(^|[-._ 0-9]){w}([-._ 0-9]|$)", name.lower()) for w in words):
                return split
    return None


def _directory_files(path: Path, split: str) -> list[Path]:
    """The data files in ``path`` and its sub-folders (two levels, hidden ones skipped): those
    of ``split`` when the names say which split each file is, else all of them."""
    found: list[Path] = []
    scanned = 0
    for pattern in ("*", "*/*"):
        for f in path.glob(pattern):
            scanned += 1
            if scanned > _MAX_SCAN:
                raise CockpitError(f"directory {path} holds too many files to look through",
                                   "name the data with a glob instead, e.g. data='corpus/*.jsonl'")
            if f.is_file() and file_type(f) and not any(p.startswith(".") for p in f.relative_to(path).parts):
                found.append(f)
    if not found:
        raise CockpitError(f"directory {path} has no data files", f"put {SUPPORTED} files in it")
    splits: dict[str, list[Path]] = {}
    for f in found:
        splits.setdefault(_split_of(f, path) or "", []).append(f)
    named = {k: v for k, v in splits.items() if k}
    if not named:
        return sorted(found)
    if split not in named:
        raise CockpitError(f"directory {path} has no files for split {split!r} (it has: {', '.join(sorted(named))})",
                           "choose one with data_split=")
    return sorted(named[split])


def source_fingerprint(source: Source) -> str:
    """A short hash of what the source holds, cheap to compute: each file's resolved path,
    size and modification time; a saved dataset's own fingerprint; a hub dataset's
    revision in the local cache (or its id, split and subset when not cached)."""
    h = hashlib.sha256()
    h.update(json.dumps([source.kind, source.split, source.subset, source.repo]).encode())
    if source.kind == "files":
        for f in source.files:
            st = f.stat()
            h.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    elif source.kind == "saved":
        for f in sorted(source.path.rglob("*")):  # type: ignore[union-attr]
            if f.is_file():
                st = f.stat()
                h.update(f"{f.relative_to(source.path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())  # type: ignore[arg-type]
    else:
        snapshot = cached_hub_snapshot(source.repo or "")
        h.update(str(snapshot or "").encode())
    return h.hexdigest()[:20]


# ---------------------------------------------------------------- the hub


def hub_offline() -> bool:
    """Whether the Hugging Face libraries were told to stay offline."""
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check of the hub's endpoint: without a network the libraries retry for
    about half a minute before they give up, a user should not wait for that."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def cached_hub_snapshot(repo: str) -> Path | None:
    """The dataset's snapshot in the local Hugging Face cache, or None (never downloads)."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - a dependency of the project
        return None
    try:
        return Path(snapshot_download(repo, repo_type="dataset", local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError, OSError):
        return None
