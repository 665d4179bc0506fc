"""The tokenized train and eval datasets of a run, built once and cached on disk.

``prepare_training_data(cfg, tokenizer)`` reads the run's data (streaming: a large file is
never held in memory), refuses it with one line when any record is bad or nothing is
left to learn, holds out the eval split, tokenizes every example exactly as ``data
check`` measured it (plain text: documents packed into rows of ``max_length``) and writes
Arrow files that the Trainer reads memory-mapped. The result is cached under
``~/.cache/llm-cockpit/tokenized/<fingerprint>/``; the fingerprint covers the data (each
file's path, size and modification time; a hub dataset's revision), the tokenizer's
vocabulary, special tokens and chat template, and every setting that changes a row. The
second run on the same data, and a resumed run, skip reading and tokenizing altogether.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cockpit.data.loading import DataOptions, FormatTally, example_digest, iter_examples, split_indices, strict_error
from cockpit.data.readers import ReadStats
from cockpit.data.records import Example, Problem
from cockpit.data.fingerprint import data_fingerprint
from cockpit.data.sources import Source, resolve_source
from cockpit.errors import CockpitError
from cockpit.paths import cache_dir

log = logging.getLogger(__name__)

KEEP_ENTRIES = 8
_BATCH_ROWS = 1000
META_FILE = "meta.json"

Progress = Callable[[str, "float | None"], None]


@dataclass
class DataStats:
    """What preparing the data found, for the run's warnings and the dashboard (truncated,
    dropped and unlearned count training examples)."""

    format: str = "none"
    examples: int = 0
    train_examples: int = 0
    eval_examples: int = 0
    train_rows: int = 0
    eval_rows: int = 0
    truncated: int = 0
    dropped: int = 0
    """Longer than max_length with no answer token left after the cut."""
    unlearned: int = 0
    """Nothing to learn even uncut (answers with loss_weight 0, a template without the answer)."""
    tokens: int = 0
    learned_tokens: int = 0
    probes: list[str] = field(default_factory=list)


@dataclass
class PreparedData:
    """The datasets a run trains and evaluates on (``datasets.Dataset``: input_ids, labels)."""

    train: Any
    eval: Any | None
    stats: DataStats
    fingerprint: str
    cached: bool
    """True when the rows came from the cache (nothing was read or tokenized)."""
    path: Path

    @property
    def probes(self) -> list[str]:
        return self.stats.probes


def resolve_sources(cfg: Any) -> tuple[Source, Source | None]:
    """The config's train and eval sources (one line when either names nothing usable)."""
    options = DataOptions.from_config(cfg)
    train = _resolve("data", cfg.data, split=options.split, subset=options.subset)
    evaluation = _resolve("eval_data", cfg.eval_data, split="test", subset=options.subset) if cfg.eval_data else None
    return train, evaluation


def _resolve(key: str, spec: str, **kw: Any) -> Source:
    """The source of a config key; its one line names the key (data or eval_data)."""
    try:
        return resolve_source(spec, **kw)
    except CockpitError as exc:
        raise CockpitError(f"{key}: {exc.message}", exc.advice) from exc


# ---------------------------------------------------------------- checking (no tokenizer)


def check_records(source: Source, options: DataOptions, progress: Progress | None = None) -> list[bytes]:
    """Read every record of ``source``; CockpitError with the first problem when any is bad.

    Returns each example's digest, in order (what the split is decided on).
    """
    stats, tally = ReadStats(), FormatTally()
    digests: list[bytes] = []
    problems: list[Problem] = []
    for item in iter_examples(source, options, stats, tally):
        if isinstance(item, Problem):
            problems.append(item)
            if len(problems) > 10_000:  # enough to name the first and say there are many
                break
            continue
        digests.append(example_digest(item))
        if progress and len(digests) % 5000 == 0:
            progress(f"reading {source.label}: {len(digests):,} examples", None)
    problems += tally.mixing_problems()
    if problems:
        problems.sort(key=lambda p: (p.path, p.line or p.row or 0))
        raise strict_error(problems, source.spec)
    if not digests:
        raise CockpitError(f"data {source.label} has no examples", "add examples to it")
    return digests


def check_training_records(cfg: Any, progress: Progress | None = None) -> None:
    """Every record of the config's data and eval data is valid (no tokenizer needed)."""
    options = DataOptions.from_config(cfg)
    train, evaluation = resolve_sources(cfg)
    check_records(train, options, progress)
    if evaluation is not None:
        check_records(evaluation, options.for_eval(), progress)


def check_training_data(cfg: Any, progress: Progress | None = None) -> PreparedData | None:
    """What a start checks before a run directory exists: every record valid and something
    to learn. With the model's tokenizer on this machine the data is tokenized and cached
    (the trainer then starts from the cache); without it (a hub model not downloaded yet)
    the records are checked and the trainer tokenizes. Raises CockpitError (one line)."""
    from cockpit.models.sources import local_tokenizer_dir

    directory = local_tokenizer_dir(cfg.model)
    if directory is None:
        check_training_records(cfg, progress)
        return None
    from cockpit.training.recipe import load_tokenizer

    try:
        tokenizer = load_tokenizer(directory)
    except Exception:  # noqa: BLE001 - a broken tokenizer is the trainer's one line to say (with the model)
        log.debug("no tokenizer for the data check", exc_info=True)
        check_training_records(cfg, progress)
        return None
    return prepare_training_data(cfg, tokenizer, progress=progress)


# ---------------------------------------------------------------- building


class _Writer:
    """Token rows into an Arrow stream file, in batches (what ``Dataset.from_file`` maps)."""

    def __init__(self, path: Path) -> None:
        import pyarrow as pa

        self.pa = pa
        self.schema = pa.schema([("input_ids", pa.list_(pa.int32())), ("labels", pa.list_(pa.int32()))])
        self.sink = pa.OSFile(str(path), "wb")
        self.writer = pa.ipc.new_stream(self.sink, self.schema)
        self.ids: list[list[int]] = []
        self.labels: list[list[int]] = []
        self.rows = 0

    def add(self, ids: list[int], labels: list[int]) -> None:
        self.ids.append(ids)
        self.labels.append(labels)
        self.rows += 1
        if len(self.ids) >= _BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.ids:
            return
        t = self.pa.list_(self.pa.int32())
        self.writer.write_batch(self.pa.record_batch([self.pa.array(self.ids, t), self.pa.array(self.labels, t)],
                                                     schema=self.schema))
        self.ids, self.labels = [], []

    def close(self) -> None:
        self.flush()
        self.writer.close()
        self.sink.close()


class _Side:
    """One of train/eval while building: its writer, and for plain text the packing buffer."""

    def __init__(self, path: Path, max_length: int, stats: DataStats, is_eval: bool) -> None:
        self.writer = _Writer(path)
        self.max_length = max_length
        self.stats = stats
        self.is_eval = is_eval
        self.buffer: list[int] = []

    def add_example(self, ex: Example, tokenizer: Any) -> None:
        from cockpit.data.tokenize import encode_example

        s = self.stats
        try:
            tok = encode_example(ex, tokenizer)
        except CockpitError as exc:
            raise CockpitError(f"{ex.where}: {exc.message}", exc.advice) from exc
        if ex.text is not None:  # plain text: every token learned, packed into full rows
            self.buffer.extend(tok.input_ids)
            while len(self.buffer) >= self.max_length:
                row, self.buffer = self.buffer[:self.max_length], self.buffer[self.max_length:]
                self._row(row, list(row))
            s.tokens += len(tok)
            s.learned_tokens += len(tok)
            return
        counted = not self.is_eval  # the warnings speak of training examples
        if tok.num_trainable == 0:
            s.unlearned += counted
            return
        if len(tok) > self.max_length:
            ids, labels = tok.input_ids[:self.max_length], tok.labels[:self.max_length]
            if all(x == -100 for x in labels):
                s.dropped += counted
                return
            s.truncated += counted
            tok = type(tok)(ids, labels)
        s.tokens += len(tok)
        s.learned_tokens += tok.num_trainable
        self._row(tok.input_ids, tok.labels)

    def _row(self, ids: list[int], labels: list[int]) -> None:
        self.writer.add(ids, labels)
        if self.is_eval:
            self.stats.eval_rows += 1
        else:
            self.stats.train_rows += 1

    def close(self) -> None:
        if self.buffer:
            self._row(self.buffer, list(self.buffer))
            self.buffer = []
        self.writer.close()


def _probe(ex: Example) -> str:
    """A probe prompt: the last user message, or for plain text the document's first words."""
    if ex.text is None:
        return ex.prompt
    words = ex.text.split()
    return " ".join(words[:12])


def _build(cfg: Any, tokenizer: Any, train: Source, evaluation: Source | None, out: Path,
           progress: Progress | None) -> DataStats:
    options = DataOptions.from_config(cfg)
    if progress:
        progress(f"checking {train.label}", None)
    digests = check_records(train, options, progress)
    eval_count = len(check_records(evaluation, options.for_eval(), progress)) if evaluation else 0
    held: set[int] = set()
    if evaluation is None:
        held = set(split_indices(digests, cfg.eval_split, cfg.seed)[1])
    stats = DataStats(examples=len(digests))
    sides = {False: _Side(out / "train.arrow", cfg.max_length, stats, False)}
    if held or evaluation is not None:
        sides[True] = _Side(out / "eval.arrow", cfg.max_length, stats, True)
    probe_pool: dict[bool, list[str]] = {False: [], True: []}
    total = len(digests) + eval_count
    done = 0
    tally = FormatTally()

    def feed(examples: Iterator[Example | Problem], is_eval: bool | None) -> None:
        nonlocal done
        for i, ex in enumerate(e for e in examples if not isinstance(e, Problem)):
            side = is_eval if is_eval is not None else i in held
            sides[side].add_example(ex, tokenizer)
            if side:
                stats.eval_examples += 1
            else:
                stats.train_examples += 1
            if len(probe_pool[side]) < cfg.sample_count:
                probe_pool[side].append(_probe(ex))
            done += 1
            if progress and done % 500 == 0:
                progress(f"tokenizing: {done:,} of {total:,} examples", done / total)

    try:
        feed(iter_examples(train, options, ReadStats(), tally), None if evaluation is None else False)
        if evaluation is not None:
            feed(iter_examples(evaluation, options.for_eval(), ReadStats()), True)
    finally:
        for side in sides.values():
            side.close()
    stats.format = tally.format
    stats.probes = probe_pool[True] or probe_pool[False]
    if not stats.train_rows:
        if stats.unlearned and not stats.dropped:
            raise CockpitError(f"no example in {train.label} has a token to learn: every answer is masked "
                               "(loss_weight 0, or a chat template that leaves the answer out)",
                               f"see llm-cockpit data check {cfg.data}")
        raise CockpitError(f"no trainable example left in {train.label} at max_length={cfg.max_length}",
                           "raise max_length or shorten the prompts")
    if progress:
        progress(f"tokenized {stats.examples:,} examples", 1.0)
    return stats


def _entry_complete(path: Path) -> bool:
    return (path / META_FILE).is_file() and (path / "train.arrow").is_file()


def _load(path: Path, fingerprint: str, cached: bool) -> PreparedData:
    from datasets import Dataset

    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    stats = DataStats(**meta["stats"])
    train = Dataset.from_file(str(path / "train.arrow"))
    evaluation = Dataset.from_file(str(path / "eval.arrow")) if (path / "eval.arrow").is_file() else None
    if evaluation is not None and len(evaluation) == 0:
        evaluation = None
    return PreparedData(train, evaluation, stats, fingerprint, cached, path)


def cache_root() -> Path:
    """``$LLM_COCKPIT_DATA_CACHE``, else ``tokenized/`` in the cockpit's cache directory."""
    env = os.environ.get("LLM_COCKPIT_DATA_CACHE")
    return Path(env) if env else cache_dir() / "tokenized"


@contextlib.contextmanager
def _locked(root: Path, fingerprint: str):
    """One builder per fingerprint (DDP ranks, two runs at once): the others wait, then hit."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{fingerprint}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def prepare_training_data(cfg: Any, tokenizer: Any, *, progress: Progress | None = None) -> PreparedData:
    """The tokenized train (and eval) datasets for ``cfg``, from the cache when it has them.

    Raises CockpitError (one line) for bad data, a source that cannot be read, or data
    with nothing left to learn; nothing is left in the cache then.
    """
    train, evaluation = resolve_sources(cfg)
    fingerprint = data_fingerprint(cfg, tokenizer, train, evaluation)
    root = cache_root()
    entry = root / fingerprint
    with _locked(root, fingerprint):
        if _entry_complete(entry):
            os.utime(entry)  # recently used: kept by the pruning
            if progress:
                progress("tokenized data from the cache", 1.0)
            return _load(entry, fingerprint, cached=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{fingerprint}.", dir=root))
        try:
            started = time.time()
            stats = _build(cfg, tokenizer, train, evaluation, tmp, progress)
            meta = {"fingerprint": fingerprint, "created": time.time(), "seconds": round(time.time() - started, 2),
                    "data": cfg.data, "eval_data": cfg.eval_data, "stats": asdict(stats)}
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
            shutil.rmtree(entry, ignore_errors=True)
            os.replace(tmp, entry)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    _prune(root)
    return _load(entry, fingerprint, cached=False)


def _prune(root: Path, keep: int = KEEP_ENTRIES) -> None:
    """Keep the most recently used entries (a tokenized 1 GB corpus is about 2 GB), and
    remove what a killed build left behind."""
    for tmp in root.glob(".*.*"):
        with contextlib.suppress(OSError):
            if tmp.is_dir() and time.time() - tmp.stat().st_mtime > 86400:
                shutil.rmtree(tmp, ignore_errors=True)
    entries = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True)
        with contextlib.suppress(OSError):
            (root / f".{old.name}.lock").unlink()
