"""The project installs as a wheel: presets and demo data ship inside it, so a fresh virtual
environment with nothing but the wheel (and the dependencies) runs the commands a newcomer
types first, from a directory that is not the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv holding the wheel built from this checkout; the dependencies come from
    the test environment's site-packages (a .pth line: no network, no copies)."""
    tmp = tmp_path_factory.mktemp("wheel")
    # setuptools' build/ and egg-info go to tmp, not into the checkout
    extra = tmp / "setup.cfg"
    extra.write_text(f"[build]\nbuild_base = {tmp / 'build'}\n[egg_info]\negg_base = {tmp}\n", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(REPO)], check=True, capture_output=True, timeout=300,
                   env={**os.environ, "DIST_EXTRA_CONFIG": str(extra)})
    wheel = next((tmp / "dist").glob("llm_cockpit-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # the test environment's packages, after the venv's own (so the wheel's cockpit wins)
    Path(site, "test-env-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    work = tmp / "elsewhere"
    work.mkdir()
    return wheel, venv, work


def _run(installed, *args: str) -> subprocess.CompletedProcess:
    _, venv, work = installed
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(LLM_COCKPIT_HOME=str(work / "state"), HF_HUB_OFFLINE="1", PYTHONSAFEPATH="1")
    return subprocess.run([str(venv / "bin" / "llm-cockpit"), *args], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_wheel_holds_the_presets_and_the_demo_data(installed):
    names = set(zipfile.ZipFile(installed[0]).namelist())
    for name in ("cockpit/bundled/presets/cpu-demo.yaml", "cockpit/bundled/presets/models.yaml",
                 "cockpit/bundled/data/dsl_train.jsonl", "cockpit/bundled/data/regression/general.jsonl",
                 "cockpit/app/config.py", "screens/review.tcss"):
        assert name in names, name
    assert not any(n.startswith(("tests/", "presets/", "data/")) for n in names)


def test_an_installed_cockpit_runs_from_anywhere(installed):
    _, venv, work = installed
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import cockpit, cockpit.paths as p; "
                            "print(cockpit.__file__); print(p.PRESETS_DIR)"], cwd=work, capture_output=True,
                           text=True, check=True).stdout.split()
    assert all(str(venv) in line for line in where), where  # not the checkout's files
    dry = _run(installed, "train", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dsl_train.jsonl" in dry.stdout and str(venv) in dry.stdout  # the bundled demo, found in the wheel
    gpu = _run(installed, "train", "--preset", "gpu-8b-workshop", "--dry-run")  # a preset read from the wheel
    assert gpu.returncode == 0 and "lora_r: 64" in gpu.stdout, gpu.stderr
    plan = _run(installed, "plan", "smollm2-135m")
    assert plan.returncode == 0, plan.stderr
    check = _run(installed, "data", "check", "data/dsl_train.jsonl")
    assert check.returncode == 0 and "72 examples" in check.stdout and str(venv) in check.stdout, check.stderr
    demo = _run(installed, "demo", "--help")
    assert demo.returncode == 0 and "demo" in demo.stdout, demo.stderr
