"""Fixtures for the TUI tests: a fixed clock, fixed hardware, recorded runs, a fast app.

Everything on screen must be the same on every machine and every day, so the app gets
a fixed ``now`` (run ages), a fixed hardware profile (no probing this machine), no
blinking cursor, and runs read from ``fixtures/runs`` (a real CPU recording and a
generated GPU run, see ``fixtures/make_gpu_run.py``).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from cockpit.config import BUNDLED_MODEL
from cockpit.planning.hardware import GpuInfo, HardwareProfile

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FIXTURE_RUNS = HERE / "fixtures" / "runs"
GPU_RUN = "2026-11-20_14-00-00-gpu-qlora"
CPU_RUN = "2026-11-21_05-09-01-cpu-demo"
FIXED_NOW = 1795240000.0  # 2026-11-21, half an hour after the CPU recording stopped
GIB = 2**30


def cpu_profile() -> HardwareProfile:
    """A 4-core laptop without a GPU."""
    return HardwareProfile(cpu_name="Example CPU", cpu_cores=4, cpu_cores_physical=4, ram_total=16 * GIB,
                           ram_available=12 * GIB, disk_path="outputs/runs", disk_free=200 * GIB,
                           versions={"torch": "2.x", "python": "3.11"})


def gpu_profile(total_gib: float = 24, free_gib: float = 23) -> HardwareProfile:
    """One 24 GiB GPU (an RTX 4090 class card)."""
    gpu = GpuInfo(index=0, name="NVIDIA GeForce RTX 4090", total_bytes=int(total_gib * GIB),
                  free_bytes=int(free_gib * GIB), used_bytes=int((total_gib - free_gib) * GIB),
                  compute_capability=(8, 9), bf16=True)
    profile = cpu_profile()
    profile.gpus = [gpu]
    profile.driver, profile.cuda_driver = "550.54", "12.4"
    profile.versions = {"torch": "2.x", "torch_cuda": "12.4", "python": "3.11"}
    return profile


def make_engine(output_dir, profile: HardwareProfile | None = None):
    from cockpit.app.wizard import WizardEngine

    fixed = profile or cpu_profile()
    return WizardEngine(output_dir, detect=lambda: fixed)


def expected_config(output_dir, profile=None):
    """The config the wizard's engine builds for the answers both wizard tests give: the bundled
    model, task "extend", the advisor's method, the demo data, and epochs=2."""
    from cockpit.app.wizard import DataChoice, ModelChoice, demo_data

    engine = make_engine(output_dir, profile)
    method = engine.plan(BUNDLED_MODEL, engine.default_method(), auto=True).recommended_choice(engine.default_method())
    train, evaluation = demo_data()
    return engine.build_config(ModelChoice(BUNDLED_MODEL, "extend"), method,
                               DataChoice(data=train, eval_data=evaluation), overrides={"epochs": 2})


def make_app(start: str = "wizard", output_dir="outputs/runs", run_dir=None, profile=None, now=None, **kw):
    """A CockpitApp with a fixed clock (or ``now``), fixed hardware and no cursor blink."""
    from screens.app import CockpitApp

    return CockpitApp(output_dir=output_dir, start=start, run_dir=run_dir, now=now or (lambda: FIXED_NOW),
                      engine=make_engine(output_dir, profile), cursor_blink=False, **kw)


async def wait_for(pilot, condition, timeout: float = 20.0, what: str = "the condition") -> None:
    """Let the app run until ``condition()`` holds (workers and messages need turns)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        if condition():
            return
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def runs_copy(tmp_path) -> Path:
    """A writable copy of the recorded runs."""
    target = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, target)
    return target


@pytest.fixture()
def at_repo(monkeypatch) -> Path:
    """Run from the repository root, so relative paths on screen are the same everywhere."""
    monkeypatch.chdir(REPO)
    return REPO


def run_async(coro):
    return asyncio.run(coro)
