"""The hardware doctor: GPUs, CPU, RAM, disk and library versions, without importing torch.

GPUs come from NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``), which talks to
the driver directly and answers in milliseconds; torch is never imported, so
``llm-cockpit doctor`` stays fast. Library versions are read from the installed package
metadata, and torch's CUDA build from the text of ``torch/version.py``.

No pynvml, no driver, or no GPU never fails: the profile is a CPU profile and ``notes``
says why in one line.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

from cockpit.run.registry import DEFAULT_RUNS_ROOT

BF16_MIN_CAPABILITY = (8, 0)  # Ampere and newer have bf16 tensor cores
_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter number
CPU_MMAP_THRESHOLD = 64 * 1024


@dataclass
class GpuInfo:
    """One NVIDIA GPU as NVML reports it (None where the driver does not say)."""

    index: int
    name: str
    total_bytes: int
    free_bytes: int
    used_bytes: int
    compute_capability: tuple[int, int] | None = None
    bf16: bool = False
    util_percent: int | None = None
    temp_c: int | None = None
    power_w: float | None = None


@dataclass
class HardwareProfile:
    """What this machine offers for training."""

    gpus: list[GpuInfo] = field(default_factory=list)
    driver: str | None = None
    cuda_driver: str | None = None  # the newest CUDA the driver supports
    cpu_name: str = ""
    cpu_cores: int = 1  # usable by this process (affinity / container limit)
    cpu_cores_physical: int | None = None
    ram_total: int = 0
    ram_available: int = 0
    disk_path: str = ""
    disk_free: int = 0
    versions: dict[str, str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def device(self) -> str:
        """``cuda`` when an NVIDIA GPU is usable, else ``cpu``."""
        return "cuda" if self.gpus else "cpu"

    @property
    def training_memory_bytes(self) -> int:
        """Memory one training process can use: the first GPU's free memory, else available RAM."""
        return self.gpus[0].free_bytes if self.gpus else self.ram_available

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for g in d["gpus"]:
            cc = g["compute_capability"]
            g["compute_capability"] = f"{cc[0]}.{cc[1]}" if cc else None
        d["device"] = self.device
        d["training_memory_bytes"] = self.training_memory_bytes
        return d


def detect_hardware(output_dir: str | os.PathLike[str] = DEFAULT_RUNS_ROOT,
                    nvml: ModuleType | None = None) -> HardwareProfile:
    """Probe this machine. ``nvml`` replaces the ``pynvml`` module (tests use a stand-in)."""
    profile = HardwareProfile()
    _probe_gpus(profile, nvml)
    _probe_cpu(profile)
    _probe_disk(profile, Path(output_dir))
    profile.versions = library_versions()
    if profile.gpus and not (profile.versions.get("torch_cuda")):
        profile.notes.append("the installed torch has no CUDA support: it will train on the CPU; "
                             "install a CUDA build of torch (pytorch.org) to use the GPU")
    return profile


def _probe_gpus(profile: HardwareProfile, nvml: ModuleType | None) -> None:
    if nvml is None:
        try:
            import pynvml as nvml  # type: ignore[no-redef]
        except ImportError:
            profile.notes.append("pynvml (nvidia-ml-py) is not installed, so GPUs cannot be listed: CPU profile")
            return
    try:
        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError subclasses, or OSError from ctypes
        profile.notes.append(f"no NVIDIA driver found ({_nvml_reason(exc)}): CPU profile, training runs on the CPU")
        return
    try:
        profile.driver = _text(_try(nvml.nvmlSystemGetDriverVersion))
        cuda = _try(nvml.nvmlSystemGetCudaDriverVersion)
        if isinstance(cuda, int) and cuda > 0:
            profile.cuda_driver = f"{cuda // 1000}.{cuda % 1000 // 10}"
        count = _try(nvml.nvmlDeviceGetCount) or 0
        for i in range(count):
            gpu = _probe_gpu(nvml, i)
            if gpu is not None:
                profile.gpus.append(gpu)
        if not profile.gpus:
            profile.notes.append("the NVIDIA driver is loaded but reports no usable GPU: CPU profile")
    finally:
        _try(nvml.nvmlShutdown)


def _probe_gpu(nvml: ModuleType, index: int) -> GpuInfo | None:
    handle = _try(nvml.nvmlDeviceGetHandleByIndex, index)
    mem = _try(nvml.nvmlDeviceGetMemoryInfo, handle) if handle is not None else None
    if mem is None:
        return None
    cc = _try(nvml.nvmlDeviceGetCudaComputeCapability, handle)
    capability = (int(cc[0]), int(cc[1])) if cc else None
    util = _try(nvml.nvmlDeviceGetUtilizationRates, handle)
    temp = _try(nvml.nvmlDeviceGetTemperature, handle, getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
    power = _try(nvml.nvmlDeviceGetPowerUsage, handle)
    return GpuInfo(
        index=index, name=_text(_try(nvml.nvmlDeviceGetName, handle)) or f"GPU {index}",
        total_bytes=int(mem.total), free_bytes=int(mem.free), used_bytes=int(mem.used),
        compute_capability=capability, bf16=bool(capability and capability >= BF16_MIN_CAPABILITY),
        util_percent=int(util.gpu) if util is not None else None,
        temp_c=int(temp) if temp is not None else None,
        power_w=round(power / 1000, 1) if isinstance(power, (int, float)) else None,
    )


def _try(fn, *args):
    """Call an NVML query; None when this GPU or driver does not support it."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - NVMLError_NotSupported and friends
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _nvml_reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:100]


def _probe_cpu(profile: HardwareProfile) -> None:
    profile.cpu_name = _cpu_name()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    quota = _cgroup_cpu_limit()
    profile.cpu_cores = max(1, min(usable, quota) if quota else usable)
    profile.cpu_cores_physical = psutil.cpu_count(logical=False)
    vm = psutil.virtual_memory()
    profile.ram_total, profile.ram_available = int(vm.total), int(vm.available)
    limit = _cgroup_memory_limit()
    if limit and limit < vm.total:
        used = _cgroup_memory_usage() or 0
        profile.ram_total = limit
        profile.ram_available = max(0, min(profile.ram_available, limit - used))
        profile.notes.append(f"a container limits memory to {limit / 2**30:.1f} GiB")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _read_first(*paths: str) -> str | None:
    for p in paths:
        try:
            return Path(p).read_text(encoding="utf-8").strip()
        except OSError:
            continue
    return None


def _cgroup_memory_limit() -> int | None:
    text = _read_first("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    if not text or not text.isdigit():
        return None  # "max" or unreadable: no limit
    value = int(text)
    return value if value < 2**60 else None  # cgroup v1 writes a huge number for "no limit"


def _cgroup_memory_usage() -> int | None:
    text = _read_first("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes")
    return int(text) if text and text.isdigit() else None


def _cgroup_cpu_limit() -> int | None:
    text = _read_first("/sys/fs/cgroup/cpu.max")
    if not text:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max" or not quota.isdigit() or not period.strip().isdigit():
        return None
    return max(1, int(quota) // max(1, int(period)))


def _probe_disk(profile: HardwareProfile, output_dir: Path) -> None:
    path = output_dir.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent  # the output directory may not exist yet: measure where it will be
    profile.disk_path = str(output_dir)
    try:
        profile.disk_free = int(shutil.disk_usage(path).free)
    except OSError as exc:
        profile.notes.append(f"cannot read free disk space under {path} ({exc.strerror})")


def library_versions() -> dict[str, str | None]:
    """Installed versions of the training stack, read from package metadata (no imports)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for key, dist in (("torch", "torch"), ("transformers", "transformers"), ("peft", "peft"),
                      ("bitsandbytes", "bitsandbytes"), ("accelerate", "accelerate"), ("pynvml", "nvidia-ml-py")):
        try:
            versions[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[key] = None
    versions["torch_cuda"] = torch_cuda_version()
    return versions


def torch_cuda_version() -> str | None:
    """The CUDA version torch was built for (None for a CPU build), from ``torch/version.py``."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        try:
            text = (Path(location) / "version.py").read_text(encoding="utf-8")
        except OSError:
            continue
        match = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
        return match.group(1) if match else None
    return None


def format_profile(profile: HardwareProfile) -> str:
    """The human-readable ``doctor`` report."""
    gib = 2**30
    lines = []
    for g in profile.gpus:
        cc = f"cc {g.compute_capability[0]}.{g.compute_capability[1]}" if g.compute_capability else "cc ?"
        extra = [f"util {g.util_percent}%" if g.util_percent is not None else "",
                 f"{g.temp_c} C" if g.temp_c is not None else "",
                 f"{g.power_w:.0f} W" if g.power_w is not None else ""]
        lines.append(f"GPU {g.index}   {g.name}: {g.total_bytes / gib:.1f} GiB, {g.free_bytes / gib:.1f} GiB free, "
                     f"{cc}, bf16 {'yes' if g.bf16 else 'no'}" + "".join(f", {e}" for e in extra if e))
    if profile.driver:
        cuda = f" (supports CUDA {profile.cuda_driver})" if profile.cuda_driver else ""
        lines.append(f"Driver  {profile.driver}{cuda}")
    if not profile.gpus:
        lines.append("GPU     none")
    physical = f", {profile.cpu_cores_physical} physical" if profile.cpu_cores_physical else ""
    lines.append(f"CPU     {profile.cpu_name}: {profile.cpu_cores} usable cores{physical}")
    lines.append(f"RAM     {profile.ram_total / gib:.1f} GiB, {profile.ram_available / gib:.1f} GiB available")
    lines.append(f"Disk    {profile.disk_free / gib:.1f} GiB free under {profile.disk_path}")
    v = profile.versions
    cuda_build = v.get("torch_cuda") or "CPU-only build"
    lines.append(f"Stack   torch {v.get('torch') or 'missing'} ({cuda_build}), transformers {v.get('transformers') or 'missing'}, "
                 f"peft {v.get('peft') or 'missing'}, bitsandbytes {v.get('bitsandbytes') or 'missing'}, "
                 f"python {v.get('python')}")
    lines.append(f"Trains  on {'GPU 0' if profile.gpus else 'the CPU'} with "
                 f"{profile.training_memory_bytes / gib:.1f} GiB usable now")
    lines.extend(f"Note    {n}" for n in profile.notes)
    return "\n".join(lines)


def tune_cpu_allocator(threshold: int = CPU_MMAP_THRESHOLD) -> bool:
    """Make freed CPU tensor memory go back to the OS at once: a fixed glibc mmap threshold.

    By default glibc raises its mmap threshold (up to 32 MiB) after the first large frees;
    from the second training step on, activation-sized tensors then come from the heap,
    whose freed holes stay resident. Measured on SmolLM2-135M (``docs/calibration.md``):
    peak RSS 15-100% above the live tensors, most with gradient checkpointing. A fixed
    threshold (which also turns the dynamic one off) gives every tensor above it its own
    mapping, unmapped on free, so RSS follows the live tensors and the memory estimate.
    Call it once, early, in a process that trains on the CPU. Returns True when applied
    (glibc on Linux only; elsewhere nothing changes).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
