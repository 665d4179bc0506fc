"""Memory and GPU readings for ``step`` and ``gpu`` events (cheap enough to call per step)."""

from __future__ import annotations

import logging
import os
import resource
from typing import Any

log = logging.getLogger(__name__)


def process_rss() -> int:
    """Current resident set size of this process in bytes (Linux /proc; else 0)."""
    try:
        with open(f"/proc/{os.getpid()}/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def peak_rss() -> int:
    """Peak resident set size of this process in bytes."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def memory_snapshot() -> list[dict[str, Any]]:
    """One dict per device: CUDA allocated/reserved/peak/total, or the CPU process RSS."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None
    devices: list[dict[str, Any]] = []
    if torch is not None and torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            devices.append({
                "device": f"cuda:{i}",
                "allocated": int(torch.cuda.memory_allocated(i)),
                "reserved": int(torch.cuda.memory_reserved(i)),
                "peak": int(torch.cuda.max_memory_allocated(i)),
                "total": int(torch.cuda.get_device_properties(i).total_memory),
            })
    devices.append({"device": "cpu", "rss": process_rss(), "peak": peak_rss(), "total": _ram_total()})
    return devices


def _ram_total() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # pragma: no cover
        return 0


class GpuPoller:
    """Reads NVML utilization, memory, temperature and power; ``None`` when there is no GPU."""

    def __init__(self) -> None:
        self._nvml = None
        self._handles: list[Any] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            self._nvml = pynvml
        except Exception:  # noqa: BLE001 - no driver, no library, no GPU: all mean "no telemetry"
            self._handles = []

    @property
    def available(self) -> bool:
        return bool(self._handles)

    def read(self) -> list[dict[str, Any]]:
        nv = self._nvml
        out = []
        for i, h in enumerate(self._handles):
            entry: dict[str, Any] = {"index": i}
            for key, fn in (
                ("util", lambda h=h: nv.nvmlDeviceGetUtilizationRates(h).gpu),
                ("mem_used", lambda h=h: nv.nvmlDeviceGetMemoryInfo(h).used),
                ("mem_total", lambda h=h: nv.nvmlDeviceGetMemoryInfo(h).total),
                ("temp_c", lambda h=h: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)),
                ("power_w", lambda h=h: nv.nvmlDeviceGetPowerUsage(h) / 1000.0),
            ):
                try:
                    entry[key] = fn()
                except Exception:  # noqa: BLE001 - a sensor a card does not have
                    entry[key] = None
            out.append(entry)
        return out
