"""Dependency direction (DESIGN.md section 1): the engine never imports the UI."""

from __future__ import annotations

import subprocess
import sys

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

ENGINE_MODULES = [".".join(p.relative_to(REPO / "cockpit").with_suffix("").parts) for p in (REPO / "cockpit").rglob("*.py")
                  if p.stem != "__init__" and p.relative_to(REPO / "cockpit").as_posix() != "cli/tui.py"]


def test_engine_imports_no_textual():
    code = (
        "import importlib, sys\n"
        f"for name in {ENGINE_MODULES!r}:\n"
        "    importlib.import_module('cockpit.' + name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'screens', 'widgets'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"cockpit imports UI modules: {out.stdout}"


def test_cli_start_up_imports_no_torch():
    """`llm-cockpit --help` (and the TUI's start) must not pay for torch/transformers."""
    code = "import sys; from cockpit.cli.main import build_parser; build_parser(); " \
           "print(','.join(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
