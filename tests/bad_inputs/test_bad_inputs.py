"""Every case of the bad-input corpus (cases.yaml) gives its one-line message and exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cockpit.cli.main import main
from cockpit.data import load_examples_strict
from cockpit.errors import CockpitError

HERE = Path(__file__).parent
CASES = yaml.safe_load((HERE / "cases.yaml").read_text(encoding="utf-8"))["cases"]
DEFAULT_ARGS = ["data", "check", "{input}", "--model", "none"]


def _ten_mb_line(tmp: Path) -> Path:
    path = tmp / "huge.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps({"prompt": "a", "completion": "b"}) + "\n")
        fh.write(json.dumps({"prompt": "long", "completion": "x" * (10 * 1024 * 1024)}) + "\n")
        fh.write(json.dumps({"prompt": "c", "completion": "d"}) + "\n")
    return path


def _directory(tmp: Path) -> Path:
    path = tmp / "a_directory"
    path.mkdir()
    return path


GENERATORS = {
    "ten_mb_line": _ten_mb_line,
    "directory": _directory,
    "missing": lambda tmp: tmp / "no_such_file.jsonl",
    "hub_not_cached": lambda tmp: "hf:nobody/not-cached",
}


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _input(case: dict, tmp: Path) -> Path | str:
    if "generate" in case:
        return GENERATORS[case["generate"]](tmp)
    return HERE / case["input"]


def _args(case: dict, input_path: Path, tmp: Path) -> list[str]:
    return [a.replace("{input}", str(input_path)).replace("{tmp}", str(tmp))
            for a in case.get("args", DEFAULT_ARGS)]


def test_corpus_is_complete_and_consistent():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert len(ids) >= 25
    used = {c["input"] for c in CASES if "input" in c}
    on_disk = {f"files/{p.name}" for p in (HERE / "files").iterdir()}
    assert used == on_disk, "every file in files/ belongs to a case and every case's file exists"
    for case in CASES:
        assert ("input" in case) != ("generate" in case), case["id"]
        assert case.get("generate", "missing") in GENERATORS, case["id"]
        assert case["exit"] in (0, 1, 2) and case["expect"], case["id"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_gives_its_message_and_exit_code(case, tmp_path, capsys):
    if case.get("without_cuda") and _has_cuda():
        pytest.skip("this machine has a CUDA GPU: the request is possible here")
    input_path = _input(case, tmp_path)
    args = _args(case, input_path, tmp_path)
    code = main(args)
    out, err = capsys.readouterr()
    both = out + err
    assert code == case["exit"], both
    assert case["expect"].replace("{input}", str(input_path)) in both, both
    assert "Traceback" not in both
    for line in err.splitlines():
        assert len(line) < 400, line  # one readable line, not a dump
    if "--json" in args:
        json.loads(out)  # one JSON document on stdout, whatever happened
    if args[:2] == ["data", "convert-chatgpt"] and code != 0:
        assert not (tmp_path / "out.jsonl").exists()  # nothing half-written
    if args[0] == "train" and code != 0:
        runs = tmp_path / "runs"
        assert not runs.exists() or not any(runs.iterdir()), "a refused start must not leave a run"


@pytest.mark.parametrize("case", [c for c in CASES if c.get("loader", c.get("args", DEFAULT_ARGS)[:2]
                                                           == ["data", "check"])],
                         ids=lambda c: c["id"])
def test_training_loader_says_the_same(case, tmp_path):
    """What ``train`` shows for the same file: its first problem, one line."""
    input_path = _input(case, tmp_path)
    if case["exit"] == 0:
        assert load_examples_strict(input_path)
        return
    with pytest.raises(CockpitError) as err:
        load_examples_strict(input_path)
    line = err.value.one_line()
    assert case["expect"] in line and "\n" not in line
