"""Columnar data through the ``datasets`` library: Parquet files (converted once to Arrow in
the datasets cache and memory-mapped), datasets saved with ``save_to_disk``, and Hugging
Face Hub datasets (from the local cache when offline). Their column types are checked
once, before any row; rows are read in batches and named ``file:row N``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from cockpit.data.raw import ColumnCheck, Record, ReadStats
from cockpit.data.records import Problem
from cockpit.data.sources import Source, cached_hub_snapshot, hub_offline, hub_reachable
from cockpit.errors import CockpitError, exception_line

_BATCH = 512


def load_parquet(path: Path):
    from datasets import load_dataset

    try:
        return load_dataset("parquet", data_files=str(path), split="train")
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds for a broken file
        raise CockpitError(f"cannot read Parquet file {path}: {exception_line(exc, 200)}",
                           "check that the file is complete (re-download or re-export it)") from exc


def _pick_split(data, where: str, split: str):
    from datasets import DatasetDict

    if isinstance(data, DatasetDict):
        if split not in data:
            raise CockpitError(f"{where} has no split {split!r} (it has: {', '.join(data)})",
                               "choose one with data_split=")
        return data[split]
    return data


def load_saved(source: Source):
    from datasets import load_from_disk

    try:
        data = load_from_disk(str(source.path))
    except Exception as exc:  # noqa: BLE001
        raise CockpitError(f"cannot load the saved dataset {source.path}: {exception_line(exc, 200)}",
                           "check that it was written by datasets' save_to_disk and is complete") from exc
    return _pick_split(data, str(source.path), source.split)


def load_hub(source: Source):
    """The hub dataset from the local cache when offline; through the network otherwise."""
    from datasets import load_dataset

    repo = source.repo or ""
    local = cached_hub_snapshot(repo)
    online = not hub_offline() and hub_reachable()
    if local is None and not online:
        why = "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set" if hub_offline() else "the hub is not reachable"
        raise CockpitError(f"hub dataset {repo} is not in the local Hugging Face cache and {why}",
                           "it needs a network once (unset HF_HUB_OFFLINE, or HF_DATASETS_OFFLINE=0), "
                           "or pass a local file")
    target = repo if online else str(local)
    try:
        return load_dataset(target, name=source.subset, split=source.split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds (ValueError, FileNotFoundError, ...)
        raise CockpitError(f"cannot load hub dataset {repo} (split {source.split}"
                           f"{', subset ' + source.subset if source.subset else ''}): {exception_line(exc, 220)}",
                           "check the id, data_split= and data_subset=") from exc


def read_columnar(ds, label: str, stats: ReadStats, check: ColumnCheck | None) -> Iterator[Record | Problem]:
    names = list(ds.column_names)
    if check is not None:
        problems = check(column_types(ds), label)
        if problems:
            stats.lines += len(ds)
            yield from problems
            return
    for i, batch in enumerate(ds.iter(batch_size=_BATCH)):
        n = len(batch[names[0]]) if names else 0
        for j in range(n):
            row = i * _BATCH + j + 1
            yield Record({k: batch[k][j] for k in names}, label, row=row)
    stats.lines += len(ds)


def column_types(ds) -> dict[str, str]:
    """Each column's Arrow type as text (``string``, ``int64``, ``list<...>``)."""
    return {name: str(ds.data.schema.field(name).type) for name in ds.column_names}
