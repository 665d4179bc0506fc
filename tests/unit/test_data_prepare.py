"""The tokenized datasets of a run: built once, cached by fingerprint, reused without reading the data."""

from __future__ import annotations

import json
import os

import pytest

from cockpit.data import load_examples, split_examples
from cockpit.data import prepare as prep
from cockpit.data.fingerprint import tokenizer_fingerprint
from cockpit.errors import CockpitError
from cockpit.data.tokenize import tokenize_example


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    root = tmp_path / "tokenized"
    monkeypatch.setenv("LLM_COCKPIT_DATA_CACHE", str(root))
    return root


def _rows(dataset) -> list[tuple[list[int], list[int]]]:
    return [(r["input_ids"], r["labels"]) for r in dataset]


def test_the_second_preparation_reads_nothing(cache, tiny_config, bundled_tokenizer, monkeypatch):
    cfg = tiny_config(eval_split=0.25)
    first = prep.prepare_training_data(cfg, bundled_tokenizer)
    assert not first.cached and len(first.train) == 9 and len(first.eval) == 3

    def no_reading(*args, **kwargs):
        raise AssertionError("the data was read again")

    monkeypatch.setattr(prep, "iter_examples", no_reading)
    monkeypatch.setattr(prep, "check_records", no_reading)
    second = prep.prepare_training_data(cfg, bundled_tokenizer)
    assert second.cached and second.fingerprint == first.fingerprint
    assert _rows(second.train) == _rows(first.train) and _rows(second.eval) == _rows(first.eval)
    assert second.probes == first.probes and second.stats == first.stats


def test_rows_are_what_training_tokenized_before(cache, tiny_config, bundled_tokenizer, tiny_data):
    """The cached rows equal the in-memory path: the same split, the same tokens, in order."""
    cfg = tiny_config(eval_split=0.25, max_length=40)
    prepared = prep.prepare_training_data(cfg, bundled_tokenizer)
    train, held = split_examples(load_examples(tiny_data).examples, cfg.eval_split, cfg.seed)
    expect = [tokenize_example(ex, bundled_tokenizer, cfg.max_length) for ex in train]
    assert _rows(prepared.train) == [(t.input_ids, t.labels) for t in expect if t is not None]
    assert prepared.probes == [ex.prompt for ex in held][: cfg.sample_count]
    assert prepared.stats.truncated == sum(1 for t in expect if t is not None and t.truncated) > 0


def test_what_changes_a_row_changes_the_fingerprint(cache, tiny_config, bundled_tokenizer, tiny_data):
    base = prep.prepare_training_data(tiny_config(), bundled_tokenizer)
    assert prep.prepare_training_data(tiny_config(max_length=56), bundled_tokenizer).fingerprint != base.fingerprint
    assert prep.prepare_training_data(tiny_config(system_prompt="Be brief."),
                                      bundled_tokenizer).fingerprint != base.fingerprint
    rows = tiny_data.read_text().splitlines()
    tiny_data.write_text("\n".join(rows[:-1]) + "\n")  # the user edits the file
    edited = prep.prepare_training_data(tiny_config(), bundled_tokenizer)
    assert not edited.cached and edited.fingerprint != base.fingerprint and edited.stats.examples == 11


def test_plain_text_is_packed_into_full_rows_every_token_learned(cache, tiny_config, bundled_tokenizer, tmp_path):
    docs = tmp_path / "corpus.jsonl"
    docs.write_text("".join(json.dumps({"text": f"Document {i}: " + "the valve turns twice. " * (i + 3)}) + "\n"
                            for i in range(10)))
    prepared = prep.prepare_training_data(tiny_config(data=str(docs), eval_split=0.2, max_length=32),
                                          bundled_tokenizer)
    stats = prepared.stats
    assert stats.format == "text" and stats.train_examples == 8 and stats.eval_examples == 2
    rows = _rows(prepared.train)
    assert all(len(ids) == 32 for ids, _ in rows[:-1]) and 0 < len(rows[-1][0]) <= 32
    assert all(ids == labels for ids, labels in rows)
    assert stats.learned_tokens == stats.tokens == sum(len(ids) for ids, _ in rows) + sum(
        len(r["input_ids"]) for r in prepared.eval)
    assert prepared.probes[0].startswith("Document")


def test_bad_data_is_refused_and_leaves_nothing_in_the_cache(cache, tiny_config, bundled_tokenizer, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": 3}\n')
    with pytest.raises(CockpitError, match=r"bad.jsonl:2: missing key 'completion'"):
        prep.prepare_training_data(tiny_config(data=str(bad)), bundled_tokenizer)
    assert not [p for p in cache.iterdir() if not p.name.endswith(".lock")]


def test_old_entries_are_pruned(cache, tiny_config, bundled_tokenizer):
    for length in range(40, 40 + prep.KEEP_ENTRIES + 2):
        prep.prepare_training_data(tiny_config(max_length=length), bundled_tokenizer)
    entries = [p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(entries) == prep.KEEP_ENTRIES


def test_the_bundled_tokenizer_alone_and_the_materialized_model_share_a_fingerprint(bundled_tokenizer):
    """The preflight tokenizes with the tokenizer alone, the trainer with the model's: one cache entry."""
    from cockpit.models.sources import models_cache
    from cockpit.training.recipe import load_tokenizer

    full = models_cache() / "smollm2-135m-instruct"
    if not (full / "tokenizer.json").is_file():
        pytest.skip("the bundled model is not materialized on this machine")
    assert tokenizer_fingerprint(load_tokenizer(full)) == tokenizer_fingerprint(bundled_tokenizer)


def test_the_trainer_starts_from_what_the_start_check_cached(cache, tiny_config, monkeypatch):
    from cockpit.run import events as ev
    from cockpit.run.launch import prepare_run
    from cockpit.training.trainer import TrainingRun

    run_dir = prepare_run(tiny_config(max_steps=1))  # the check before the run exists tokenizes
    assert [p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")]
    monkeypatch.setattr(prep, "_build", lambda *a, **k: (_ for _ in ()).throw(AssertionError("tokenized twice")))
    sink = ev.ListSink()
    assert TrainingRun(run_dir, sink=sink).execute() == "finished"
    info = [e.message for e in sink.of_type(ev.Warning) if e.kind == "info"]
    assert any("tokenized data from the cache" in m for m in info), info
    assert os.path.isdir(run_dir)
