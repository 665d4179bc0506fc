"""The runs registry: which runs roots exist, and finding a run in all of them from anywhere."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from cockpit.errors import CockpitError
from cockpit.paths import state_dir
from cockpit.run.rundir import LATEST
from cockpit.run.status import write_status
from cockpit.run.atomic import atomic_symlink
from cockpit.run.registry import (find_run, known_roots, list_all_runs, register_root, registered_roots,
                                   registry_path, run_spec)


def fake_run(root: Path, name: str, state: str = "finished") -> Path:
    """A run directory with a status file (what listing and lookup read), and ``latest`` on it."""
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    write_status(run, state=state, pid=None, model="m", method="lora", step=1, total_steps=1)
    atomic_symlink(name, root / LATEST)
    return run


def stored() -> list[str]:
    return json.loads(registry_path().read_text())["roots"]


def test_state_dir_is_the_env_override_else_xdg_state_else_local_state(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_COCKPIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert registry_path() == tmp_path / "home" / "runs_roots.json"
    monkeypatch.delenv("LLM_COCKPIT_HOME")
    assert state_dir() == tmp_path / "xdg" / "llm-cockpit"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert state_dir() == tmp_path / "user" / ".local" / "state" / "llm-cockpit"


def test_registering_a_root_twice_keeps_one_entry_stored_absolute(tmp_path, monkeypatch):
    root = tmp_path / "proj" / "outputs" / "runs"
    root.mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "proj")
    assert register_root("outputs/runs")
    assert register_root(root)
    (tmp_path / "link").symlink_to(tmp_path / "proj")
    assert register_root(tmp_path / "link" / "outputs" / "runs")  # the same directory by another name
    assert stored() == [str(root.resolve())]


def test_a_root_that_no_longer_exists_is_skipped_then_pruned(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    for root in (a, b, c):
        root.mkdir()
    register_root(a)
    register_root(b)
    b.rmdir()
    assert known_roots() == [a.resolve()]  # skipped at once...
    assert stored() == [str(a.resolve()), str(b.resolve())]  # ...without a write
    register_root(c)
    assert stored() == [str(a.resolve()), str(c.resolve())]  # pruned at the next registration


@pytest.mark.parametrize("content", ["{not json", "", "[]", '{"roots": "x"}', '{"roots": [1, null, "relative/dir"]}',
                                     "\x00\xff"])
def test_a_corrupt_registry_reads_as_empty_and_is_rewritten(tmp_path, content):
    registry_path().parent.mkdir(parents=True, exist_ok=True)
    registry_path().write_text(content, encoding="latin-1")
    assert registered_roots() == []
    assert known_roots() == []
    root = tmp_path / "runs"
    root.mkdir()
    assert register_root(root)
    assert stored() == [str(root.resolve())]


def test_an_unwritable_registry_does_not_stop_anything(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LLM_COCKPIT_HOME", str(blocker / "state"))
    assert register_root(tmp_path) is False
    assert registered_roots() == []


def _register(root: str) -> None:
    register_root(root)


def test_roots_registered_at_the_same_time_are_all_kept(tmp_path):
    roots = [tmp_path / f"r{i}" for i in range(6)]
    for root in roots:
        root.mkdir()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_register, args=(str(r),)) for r in roots]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert sorted(stored()) == sorted(str(r.resolve()) for r in roots)


def test_runs_of_every_root_are_found_from_another_directory(tmp_path, monkeypatch):
    a, b = tmp_path / "a" / "outputs" / "runs", tmp_path / "b" / "runs"
    old = fake_run(a, "2025-01-01_10-00-00-first")
    new = fake_run(b, "2025-02-01_10-00-00-second")
    register_root(a)
    register_root(b)
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert [r.path for r in list_all_runs()] == [old.resolve(), new.resolve()]  # oldest first, both roots
    assert find_run("2025-01-01_10-00-00-first") == old.resolve()
    assert find_run("2025-02") == new.resolve()  # a unique prefix
    assert find_run(None) == find_run(LATEST) == new.resolve()  # the newest of every root
    assert run_spec(old) == old.name  # its name finds it from here
    with pytest.raises(CockpitError, match="no run named '2025-02'"):
        find_run("2025-02", output_dir=a)  # an explicit root is that root only
    assert [r.path for r in list_all_runs(output_dir=a)] == [a / old.name]


def test_latest_prefers_the_current_directorys_runs(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    here = fake_run(project / "outputs" / "runs", "2025-01-01_10-00-00-here")
    newer = fake_run(tmp_path / "other", "2025-03-01_10-00-00-newer")
    register_root(newer.parent)
    monkeypatch.chdir(project)
    assert find_run(None) == here.resolve()
    assert known_roots()[0] == (project / "outputs" / "runs").resolve()  # listed first, never registered
    monkeypatch.chdir(tmp_path)
    assert find_run(None) == newer.resolve()


def test_a_name_in_two_roots_is_ambiguous_in_one_line_naming_both(tmp_path, monkeypatch):
    one = fake_run(tmp_path / "one", "2025-01-01_10-00-00-x")
    two = fake_run(tmp_path / "two", "2025-01-01_10-00-00-xy")
    three = fake_run(tmp_path / "three", "2025-01-01_10-00-00-x")
    for run in (one, two, three):
        register_root(run.parent)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CockpitError) as info:
        find_run("2025-01-01_10-00-00-x")  # an exact name in two roots (the longer name does not count)
    line = info.value.one_line()
    assert "ambiguous" in line and str(one.resolve()) in line and str(three.resolve()) in line
    assert str(two.resolve()) not in line and "\n" not in line
    assert run_spec(one) == str(one)  # its name would not find it alone: the path is given
    assert find_run("2025-01-01_10-00-00-xy") == two.resolve()


def test_nothing_found_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CockpitError, match="no runs yet") as info:
        find_run(None)
    assert "llm-cockpit train" in info.value.one_line()
    with pytest.raises(CockpitError, match="no run named 'nope'"):
        find_run("nope")
    assert list_all_runs() == []
