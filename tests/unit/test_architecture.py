"""The architecture as tests (DESIGN.md section 1): the engine never imports the UI, nothing
imports a CLI module, the Textual screens hold Textual code only, and each status file has
one writer. Checked over every module of the tree, at import time and in the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UI_PACKAGES = ("textual", "screens", "widgets")
TUI_FRONT_END = "cockpit/cli/tui.py"  # opens the Textual app (imports screens lazily, in its handlers)
TUI_OPENERS = {TUI_FRONT_END, "cockpit/cli/chat.py"}  # the commands that open a Textual screen
CLI_IMPORTS_ALLOWED = {("cockpit/cli/tui.py", "cockpit.cli.plain_wizard"),  # wizard --plain
                       ("cockpit/cli/eval.py", "cockpit.cli.regression")}  # eval --regression's dialogue
CLI_SHARED = "cockpit.cli.console"  # the CLI's own terminal output, for every command (no command itself)


def _modules(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (REPO / d).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside a function (absolute names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)  # from cockpit.cli import x
    return names


def _is(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


ENGINE = _modules("cockpit")
ENGINE_MODULES = [".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__") for p in ENGINE
                  if _rel(p) != TUI_FRONT_END]


def test_the_rule_sees_every_subpackage():
    packages = {p.parent.relative_to(REPO).as_posix() for p in ENGINE}
    assert {"cockpit/export", "cockpit/cli", "cockpit/run", "cockpit/training", "cockpit/data", "cockpit/app",
            "cockpit/planning", "cockpit/evaluation", "cockpit/models", "cockpit/chat"} <= packages


def test_engine_imports_no_textual():
    code = (
        "import importlib, sys\n"
        f"for name in {ENGINE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {UI_PACKAGES!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"cockpit imports UI modules: {out.stdout}"


@pytest.mark.parametrize("path", [p for p in ENGINE if _rel(p) not in TUI_OPENERS], ids=_rel)
def test_no_engine_module_names_the_ui_even_lazily(path):
    bad = sorted(n for n in _imports(path) if any(_is(n, ui) for ui in UI_PACKAGES))
    assert not bad, f"{_rel(path)} imports {bad}"


@pytest.mark.parametrize("path", _modules("cockpit", "screens", "widgets"), ids=_rel)
def test_nothing_imports_a_cli_module(path):
    """Front ends call the application layer (cockpit.app) and the engine, never each other:
    only cockpit.cli.main wires the commands (by name), with two named exceptions."""
    if _rel(path) == "cockpit/cli/main.py":
        return
    rel = _rel(path)
    bad = sorted(n for n in _imports(path) if _is(n, "cockpit.cli") and n != "cockpit.cli"
                 and not (rel.startswith("cockpit/cli/") and _is(n, CLI_SHARED))
                 and not any(_is(n, allowed) for where, allowed in CLI_IMPORTS_ALLOWED if where == rel))
    assert not bad, f"{_rel(path)} imports {bad}"


@pytest.mark.parametrize("path", [p for p in _modules("screens") if p.name != "__init__.py"], ids=_rel)
def test_screens_hold_textual_code_only(path):
    """A module of screens/ draws with Textual (or drives the screens that do); toolkit-free
    logic belongs to cockpit/."""
    assert any(_is(n, "textual") or _is(n, "screens") for n in _imports(path)), \
        f"{_rel(path)} has no Textual code: move it to cockpit/"


def test_each_status_file_has_one_writer():
    """status.json is written by the trainer only, launch.json by the launchers only, both
    through cockpit.run.status (and no module writes either file another way)."""
    trainer_side = {"cockpit/training"}
    launcher_side = {"cockpit/run/launch.py"}
    for path in _modules("cockpit", "screens", "widgets"):
        rel, names = _rel(path), _imports(path)
        if rel == "cockpit/run/status.py":
            continue
        if "cockpit.run.status.write_status" in names:
            assert any(rel.startswith(t) for t in trainer_side), f"{rel} writes status.json"
        if "cockpit.run.status.write_launch" in names:
            assert rel in launcher_side, f"{rel} writes launch.json"
        if rel.startswith("cockpit/"):  # the file names are defined in one place
            text = path.read_text(encoding="utf-8")
            assert 'FILE = "status.json"' not in text and 'FILE = "launch.json"' not in text, rel


def test_cli_start_up_imports_no_torch():
    """`llm-cockpit --help` (and the TUI's start) must not pay for torch/transformers."""
    code = "import sys; from cockpit.cli.main import build_parser; build_parser(); " \
           "print(','.join(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
