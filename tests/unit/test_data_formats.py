"""Every accepted data format and source: detected, checked, shown as the model sees it,
and trained on (two steps on the tiny model)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cockpit.run import events as ev
from cockpit.data import DataOptions, build_report, load_examples
from cockpit.errors import CockpitError
from cockpit.run.launch import prepare_run
from cockpit.training.trainer import TrainingRun

PEER = Path(__file__).resolve().parents[3] / "shared" / "peer-data"

QA = [(f"What does glorp {i} do?", f"glorp {i} turns the valve {i % 3} times.") for i in range(12)]


def records(fmt: str, columnar: bool = False) -> list[dict]:
    """Twelve examples of one format (``columnar``: one type per field, as Arrow needs)."""
    if fmt == "prompt_completion":
        return [{"prompt": q, "completion": a} for q, a in QA]
    if fmt == "messages":
        return [{"messages": [{"role": "user", "content": q if columnar else [{"type": "text", "text": q}]},
                              {"role": "assistant", "content": a}]} for q, a in QA]
    if fmt == "alpaca":
        return [{"instruction": q, "input": "" if i % 2 else "in the garden", "output": a,
                 **({"system": "Be brief."} if i == 0 else {})} for i, (q, a) in enumerate(QA)]
    if fmt == "sharegpt":
        return [{"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]} for q, a in QA]
    if fmt == "text":
        return [{"text": f"{q} {a} " * 3} for q, a in QA]
    raise AssertionError(fmt)


def write(path: Path, rows: list[dict], kind: str) -> Path:
    """``rows`` as a file of ``kind``: jsonl, json (array), csv, tsv or parquet."""
    if kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif kind == "json":
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    elif kind in ("csv", "tsv"):
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t" if kind == "tsv" else ",")
            w.writeheader()
            w.writerows(rows)
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), str(path))
    else:
        raise AssertionError(kind)
    return path


def source(tmp_path: Path, fmt: str, kind: str) -> str:
    """A data source of ``kind`` (a file type, or dir/glob/saved) holding ``fmt`` records."""
    rows = records(fmt, columnar=kind in ("parquet", "saved"))
    if kind == "dir":  # split-named files: the train ones are trained on
        d = tmp_path / "dataset"
        (d / "data").mkdir(parents=True)
        write(d / "data" / "train-00000.jsonl", rows[:8], "jsonl")
        write(d / "data" / "train-00001.jsonl", rows[8:], "jsonl")
        write(d / "data" / "test-00000.jsonl", rows[:2], "jsonl")
        (d / "README.md").write_text("# a dataset\n")
        return str(d)
    if kind == "glob":
        d = tmp_path / "parts"
        d.mkdir()
        write(d / "a.jsonl", rows[:6], "jsonl")
        write(d / "b.json", rows[6:], "json")
        return str(d / "*.json*")
    if kind == "saved":
        from datasets import Dataset

        out = tmp_path / "saved"
        Dataset.from_list(rows).save_to_disk(str(out))
        return str(out)
    suffix = {"json": ".json", "jsonl": ".jsonl", "csv": ".csv", "tsv": ".tsv", "parquet": ".parquet"}[kind]
    return str(write(tmp_path / f"train{suffix}", rows, kind))


# Every format appears at least once, every source kind at least once.
CASES = [("prompt_completion", "jsonl"), ("messages", "jsonl"), ("alpaca", "json"), ("sharegpt", "json"),
         ("text", "jsonl"), ("prompt_completion", "csv"), ("alpaca", "tsv"), ("alpaca", "parquet"),
         ("messages", "parquet"), ("sharegpt", "dir"), ("prompt_completion", "glob"), ("messages", "saved")]


@pytest.mark.parametrize("fmt,kind", CASES, ids=[f"{f}-{k}" for f, k in CASES])
def test_each_format_and_source_is_checked_and_trains(tmp_path, fmt, kind, bundled_tokenizer, tiny_config):
    spec = source(tmp_path, fmt, kind)
    report = build_report(spec, tokenizer=bundled_tokenizer, max_length=256)
    assert report.ok, report.to_lines()
    assert report.format == fmt and report.examples == 12
    share = report.learned_share
    assert (share == 1.0) if fmt == "text" else (0 < share < 1), share
    assert report.marked and any(learned for _, learned in report.marked[0]["segments"])
    run_dir = prepare_run(tiny_config(data=spec, max_steps=2, eval_split=0.2, max_length=64))
    sink = ev.ListSink()
    assert TrainingRun(run_dir, sink=sink).execute() == "finished"
    assert [e.step for e in sink.of_type(ev.Step)] == [1, 2]


def test_alpaca_input_history_and_system_become_the_conversation(tmp_path):
    f = write(tmp_path / "a.json", [{"instruction": "Translate", "input": "hallo", "output": "hello",
                                     "system": "You translate.", "history": [["hi", "hey"]]}], "json")
    (ex,) = load_examples(f).examples
    assert ex.messages == [{"role": "system", "content": "You translate."}, {"role": "user", "content": "hi"},
                           {"role": "assistant", "content": "hey"}, {"role": "user", "content": "Translate\nhallo"},
                           {"role": "assistant", "content": "hello"}]
    assert ex.format == "alpaca" and ex.line == 2


def test_sharegpt_tool_turns_map_onto_chat_roles(tmp_path):
    row = {"conversations": [{"from": "human", "value": "weather?"}, {"from": "function_call", "value": '{"name": "w"}'},
                             {"from": "observation", "value": "sunny"}, {"from": "gpt", "value": "It is sunny."}],
           "tools": '[{"name": "w"}]'}
    (ex,) = load_examples(write(tmp_path / "t.jsonl", [row], "jsonl")).examples
    assert [m["role"] for m in ex.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert '[{"name": "w"}]' in ex.messages[0]["content"]


def test_loss_weight_zero_keeps_a_turn_out_of_the_loss(tmp_path, bundled_tokenizer):
    from cockpit.data.tokenize import encode_example

    row = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "first", "loss_weight": 0},
                        {"role": "user", "content": "b"}, {"role": "assistant", "content": "second", "loss_weight": 1}]}
    (ex,) = load_examples(write(tmp_path / "w.jsonl", [row], "jsonl")).examples
    tok = encode_example(ex, bundled_tokenizer)
    learned = bundled_tokenizer.decode([t for t in tok.labels if t != -100])
    assert "second" in learned and "first" not in learned


def test_a_source_with_nothing_to_learn_is_named_and_refused(tmp_path, bundled_tokenizer, tiny_config):
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a, "loss_weight": 0}]}
            for q, a in QA]
    f = write(tmp_path / "none.jsonl", rows, "jsonl")
    report = build_report(f, tokenizer=bundled_tokenizer)
    assert not report.ok and report.unlearned_lines == list(range(1, 13))
    text = "\n".join(report.to_lines())
    assert "nothing to learn in 12 examples (lines 1, 2, 3" in text and text.endswith("no example has a token to learn (see 'nothing to learn' above)")
    runs = tmp_path / "runs"
    with pytest.raises(CockpitError, match="has a token to learn"):
        prepare_run(tiny_config(data=str(f), output_dir=str(runs)))
    assert not runs.exists() or not any(runs.iterdir()), "a refused start leaves no run"


def test_column_mapping_and_a_forced_format(tmp_path):
    f = write(tmp_path / "qa.jsonl", [{"question": q, "answer": a} for q, a in QA], "jsonl")
    refused = load_examples(f)
    assert "columns=prompt:question,completion:answer" in refused.problems[0].message
    mapped = load_examples(f, columns="prompt:question,completion:answer")
    assert len(mapped.examples) == 12 and mapped.examples[0].completion == QA[0][1]
    text = write(tmp_path / "doc.jsonl", [{"content": "a document"}], "jsonl")
    (doc,) = load_examples(text, columns={"text": "content"}).examples
    assert doc.format == "text" and doc.text == "a document"
    forced = load_examples(write(tmp_path / "pc.jsonl", records("prompt_completion")[:1], "jsonl"),
                           data_format="alpaca")
    assert "not a alpaca record: no 'instruction' key" in forced.problems[0].message


def test_supervised_formats_may_share_a_file_plain_text_may_not(tmp_path):
    mixed = write(tmp_path / "m.jsonl", records("alpaca")[:3] + records("sharegpt")[:2], "jsonl")
    res = load_examples(mixed)
    assert not res.problems and res.format == "mixed"
    assert "formats: 3 alpaca (lines 1, 2, 3), 2 sharegpt (lines 4, 5)" in res.notes
    with_text = write(tmp_path / "t.jsonl", records("alpaca")[:3] + records("text")[:1], "jsonl")
    res = load_examples(with_text)
    assert [p.line for p in res.problems] == [4]
    assert "a text record in data of alpaca records" in res.problems[0].message


def test_preference_data_is_recognised_and_refused_with_its_reason(tmp_path):
    f = write(tmp_path / "dpo.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}], "jsonl")
    assert "preference pair (chosen/rejected)" in load_examples(f).problems[0].message
    kto = write(tmp_path / "kto.jsonl", [{"messages": [{"role": "user", "content": "p"},
                                                       {"role": "assistant", "content": "a"}], "label": False}], "jsonl")
    assert "KTO preference data" in load_examples(kto).problems[0].message
    assert len(load_examples(kto, data_format="messages").examples) == 1  # forced: the user's choice


def test_a_broken_json_array_names_the_line_of_the_bad_element(tmp_path):
    f = tmp_path / "a.json"
    f.write_text('[\n  {"prompt": "a", "completion": "b"},\n  {"prompt": "c", "completion": }\n]\n')
    res = load_examples(f)
    assert len(res.examples) == 1 and res.examples[0].line == 2
    (problem,) = res.problems
    assert problem.line == 3 and "invalid JSON" in problem.message and "rest of the array" in problem.message


def test_csv_rows_keep_their_text_and_their_line_numbers(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text('prompt,completion\n"multi\nline question",0042\nshort,NA\nbad,row,extra\n', encoding="utf-8")
    res = load_examples(f)
    assert [(e.line, e.completion) for e in res.examples] == [(2, "0042"), (4, "NA")]
    assert res.problems[0].line == 5 and "3 fields, but the header names 2 columns" in res.problems[0].message


def test_parquet_with_a_wrong_column_type_is_one_problem(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"prompt": ["a", "b"], "completion": [1, 2]}), str(f))
    res = load_examples(f)
    assert not res.examples
    (problem,) = res.problems
    assert problem.line is None and "column 'completion' holds int64 values, not text" in problem.message


def test_directory_takes_its_split_and_refuses_an_unknown_one(tmp_path):
    spec = source(tmp_path, "prompt_completion", "dir")
    assert len(load_examples(spec).examples) == 12
    assert len(load_examples(spec, split="test").examples) == 2
    with pytest.raises(CockpitError, match=r"no files for split 'validation' \(it has: test, train\)"):
        load_examples(spec, split="validation")


def _hub_snapshot(cache: Path, repo: str, rows: list[dict]) -> None:
    """A dataset as the Hugging Face cache holds it after a download."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    base = cache / f"datasets--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    snap = base / "snapshots" / commit / "data"
    snap.mkdir(parents=True)
    write(snap / "train.jsonl", rows, "jsonl")
    write(snap / "test.jsonl", rows[:3], "jsonl")


def test_a_hub_dataset_in_the_local_cache_loads_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _hub_snapshot(tmp_path / "hub", "someone/glorp", records("prompt_completion"))
    assert len(load_examples("hf:someone/glorp").examples) == 12
    assert len(load_examples("hf:someone/glorp:test").examples) == 3
    with pytest.raises(CockpitError) as err:
        load_examples("hf:someone/not-downloaded")
    line = err.value.one_line()
    assert "hub dataset someone/not-downloaded is not in the local Hugging Face cache" in line
    assert "HF_DATASETS_OFFLINE=0" in line


def test_data_options_are_the_configs(tiny_config):
    cfg = tiny_config(data_format="alpaca", columns="instruction:q,output:a", data_split="dev", data_subset="en")
    opts = DataOptions.from_config(cfg)
    assert (opts.data_format, opts.column_map, opts.split, opts.subset) == ("alpaca", {"instruction": "q",
                                                                                      "output": "a"}, "dev", "en")
    with pytest.raises(CockpitError, match="columns: unknown key 'answer'"):
        tiny_config(columns="answer:a")


# ---------------------------------------------------------------- the peers' demo files

PEER_FILES = [("identity.json", "alpaca", 91), ("glaive_toolcall_en_demo.json", "sharegpt", 100),
              ("v1_sft_demo.jsonl", "messages", 200), ("c4_demo.jsonl", "text", 100)]


@pytest.mark.skipif(not PEER.is_dir(), reason="../shared/peer-data is not on this machine")
@pytest.mark.parametrize("name,fmt,count", PEER_FILES, ids=[n for n, _, _ in PEER_FILES])
def test_peer_demo_files_pass(name, fmt, count, bundled_tokenizer):
    report = build_report(PEER / name, tokenizer=bundled_tokenizer)
    assert report.ok, report.to_lines()[:5]
    assert (report.format, report.examples) == (fmt, count)
    assert (report.learned_share == 1.0) if fmt == "text" else (0 < report.learned_share < 1)


@pytest.mark.skipif(not PEER.is_dir(), reason="../shared/peer-data is not on this machine")
@pytest.mark.parametrize("name", ["dpo_en_demo.json", "kto_en_demo.json"])
def test_peer_preference_files_are_refused_with_a_reason(name):
    res = load_examples(PEER / name)
    assert not res.examples and len(res.problems) == 100
    assert all(p.kind == "preference" for p in res.problems)


@pytest.mark.skipif(not PEER.is_dir(), reason="../shared/peer-data is not on this machine")
def test_the_tool_call_demo_trains(tiny_config):
    run_dir = prepare_run(tiny_config(data=str(PEER / "glaive_toolcall_en_demo.json"), max_steps=2,
                                      max_length=128, batch_size=2))
    assert TrainingRun(run_dir, sink=ev.ListSink()).execute() == "finished"


def test_gzip_compressed_text_files_are_read_as_they_are(tmp_path):
    import gzip

    f = tmp_path / "train.jsonl.gz"
    with gzip.open(f, "wt", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in records("alpaca")))
    res = load_examples(f)
    assert len(res.examples) == 12 and res.format == "alpaca" and not res.problems
    c = tmp_path / "train.csv.gz"
    with gzip.open(c, "wt", encoding="utf-8", newline="") as fh:
        fh.write("prompt,completion\nhi,there\n")
    assert load_examples(c).examples[0].completion == "there"
