"""The hardware doctor: the no-GPU path on this machine, and the NVML parsing.

This machine has no NVIDIA driver, so the GPU branch is exercised through a stand-in for
the ``pynvml`` module with the same function names and return types.
"""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace
from typing import ClassVar

import pytest

from cockpit.planning.hardware import (
    HardwareProfile,
    detect_hardware,
    format_profile,
    library_versions,
    torch_cuda_version,
)


class FakeNVML:
    """Answers like pynvml does for two GPUs: an A100 and an old T4 without bf16."""

    NVML_TEMPERATURE_GPU = 0
    GPUS: ClassVar[list[tuple]] = [
        ("NVIDIA A100-SXM4-80GB", 80 * 2**30, 79 * 2**30, (8, 0), 12, 41, 61000),
        ("Tesla T4", 15 * 2**30, 14 * 2**30, (7, 5), None, 55, None),  # None: "not supported"
    ]

    def __init__(self, fail_init: Exception | None = None):
        self.fail_init = fail_init
        self.shutdown = False

    def nvmlInit(self):
        if self.fail_init:
            raise self.fail_init

    def nvmlShutdown(self):
        self.shutdown = True

    def nvmlSystemGetDriverVersion(self):
        return b"550.54.15"

    def nvmlSystemGetCudaDriverVersion(self):
        return 12040

    def nvmlDeviceGetCount(self):
        return len(self.GPUS)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return self.GPUS[h][0]

    def nvmlDeviceGetMemoryInfo(self, h):
        total, free = self.GPUS[h][1], self.GPUS[h][2]
        return SimpleNamespace(total=total, free=free, used=total - free)

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return self.GPUS[h][3]

    def nvmlDeviceGetUtilizationRates(self, h):
        if self.GPUS[h][4] is None:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return SimpleNamespace(gpu=self.GPUS[h][4], memory=3)

    def nvmlDeviceGetTemperature(self, h, sensor):
        return self.GPUS[h][5]

    def nvmlDeviceGetPowerUsage(self, h):
        if self.GPUS[h][6] is None:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return self.GPUS[h][6]


def test_this_machine_without_a_driver_gives_a_cpu_profile():
    profile = detect_hardware()
    assert profile.device == "cpu" and profile.gpus == []
    assert any("CPU profile" in n for n in profile.notes)
    assert profile.cpu_cores >= 1 and profile.ram_total > 0 and 0 < profile.ram_available <= profile.ram_total
    assert profile.training_memory_bytes == profile.ram_available
    assert profile.disk_free > 0
    assert profile.versions["torch"] and profile.versions["transformers"] and profile.versions["python"]


def test_missing_pynvml_is_a_note_not_a_crash(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    profile = detect_hardware()
    assert profile.device == "cpu"
    assert any("pynvml (nvidia-ml-py) is not installed" in n for n in profile.notes)


def test_a_failing_driver_is_a_note_not_a_crash():
    fake = FakeNVML(fail_init=OSError("NVML Shared Library Not Found"))
    profile = detect_hardware(nvml=fake)
    assert profile.gpus == [] and any("no NVIDIA driver found (NVML Shared Library Not Found)" in n
                                      for n in profile.notes)


def test_gpus_are_read_from_nvml():
    fake = FakeNVML()
    profile = detect_hardware(nvml=fake)
    a100, t4 = profile.gpus
    assert profile.device == "cuda" and fake.shutdown
    assert (a100.name, a100.total_bytes, a100.free_bytes, a100.compute_capability, a100.bf16) == (
        "NVIDIA A100-SXM4-80GB", 80 * 2**30, 79 * 2**30, (8, 0), True)
    assert (a100.util_percent, a100.temp_c, a100.power_w) == (12, 41, 61.0)
    assert t4.bf16 is False and t4.util_percent is None and t4.power_w is None  # unsupported queries
    assert profile.driver == "550.54.15" and profile.cuda_driver == "12.4"
    assert profile.training_memory_bytes == 79 * 2**30  # the first GPU's free memory
    data = json.loads(json.dumps(profile.to_dict()))
    assert data["gpus"][0]["compute_capability"] == "8.0" and data["device"] == "cuda"
    # this venv's torch is a CPU build: the doctor says the GPU would go unused
    if not profile.versions["torch_cuda"]:
        assert any("no CUDA support" in n for n in profile.notes)
    text = format_profile(profile)
    assert "GPU 0   NVIDIA A100-SXM4-80GB: 80.0 GiB, 79.0 GiB free, cc 8.0, bf16 yes" in text
    assert "Driver  550.54.15 (supports CUDA 12.4)" in text


def test_the_report_of_a_cpu_profile():
    text = format_profile(detect_hardware("/nonexistent/outputs/runs"))
    assert "GPU     none" in text and "Trains  on the CPU" in text
    assert "free under /nonexistent/outputs/runs" in text  # measured on the nearest existing parent


def test_versions_without_importing_torch():
    code = ("import sys, cockpit.planning.hardware as h, cockpit.models.catalog, cockpit.planning.memory, cockpit.planning.advisor;"
            "p = h.detect_hardware(); assert 'torch' not in sys.modules, 'torch imported';"
            "assert 'transformers' not in sys.modules; print(p.versions['torch'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == library_versions()["torch"]


def test_torch_cuda_version_matches_the_installed_build():
    import importlib.metadata

    version = importlib.metadata.version("torch")
    cuda = torch_cuda_version()
    if "+cpu" in version:
        assert cuda is None
    else:
        assert cuda is None or cuda[0].isdigit()


def test_profile_defaults_are_a_cpu():
    assert HardwareProfile().device == "cpu"


@pytest.mark.parametrize("limit_text, expected", [("max", None), ("1073741824", 1073741824)])
def test_cgroup_memory_limit_parsing(monkeypatch, limit_text, expected):
    from cockpit.planning import hardware
    monkeypatch.setattr(hardware, "_read_first", lambda *paths: limit_text)
    assert hardware._cgroup_memory_limit() == expected


_ALLOCATOR_PROBE = """
import ctypes, sys
from cockpit.planning.hardware import tune_cpu_allocator
if sys.argv[1] == "1":
    assert tune_cpu_allocator()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20

big = libc.malloc(8 << 20)  # freeing a large mapping raises glibc's dynamic threshold
ctypes.memset(big, 1, 8 << 20)
libc.free(big)
before = rss_mib()
blocks, pins = [], []
for _ in range(64):  # 1 MiB blocks with live 48 KiB blocks between them, like activations
    block = libc.malloc(1 << 20)
    ctypes.memset(block, 1, 1 << 20)
    blocks.append(block)
    pins.append(libc.malloc(48 << 10))
for block in blocks:
    libc.free(block)
print(rss_mib() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_the_tuned_allocator_returns_freed_blocks_to_the_os():
    def retained_mib(tuned: str) -> int:
        out = subprocess.run([sys.executable, "-c", _ALLOCATOR_PROBE, tuned], capture_output=True, text=True,
                             timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        return int(out.stdout)

    assert retained_mib("0") >= 48  # default glibc: the freed 1 MiB blocks stay resident between the pins
    assert retained_mib("1") <= 8  # tuned: each block was its own mapping, unmapped when freed
