"""GPU utilization and memory through NVML, exported only where a GPU exists.

On a machine without an NVIDIA driver the collector yields no series at all, so dashboards show
"no data" rather than a misleading zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


def open_nvml() -> ModuleType | None:
    """Return an initialized ``pynvml`` module, or None where NVML or a GPU is missing."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() == 0:
            return None
    except pynvml.NVMLError:
        return None
    module: ModuleType = pynvml
    return module


def gpu_count() -> int:
    """Return how many NVIDIA GPUs NVML sees (0 without a driver or a GPU)."""
    nvml = open_nvml()
    return int(nvml.nvmlDeviceGetCount()) if nvml is not None else 0


class GpuCollector(Collector):
    """Collects per-GPU utilization (percent) and memory (bytes) at scrape time."""

    def __init__(self, nvml: Any) -> None:
        """Use an initialized NVML binding (``pynvml``, or a stand-in in tests)."""
        self._nvml = nvml

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield one sample per device for each metric."""
        utilization = GaugeMetricFamily(
            "cvops_gpu_utilization_percent", "GPU busy time share.", labels=["gpu"]
        )
        used = GaugeMetricFamily("cvops_gpu_memory_used_bytes", "GPU memory in use.", labels=["gpu"])
        total = GaugeMetricFamily("cvops_gpu_memory_total_bytes", "GPU memory size.", labels=["gpu"])
        for index in range(self._nvml.nvmlDeviceGetCount()):
            handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
            memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            utilization.add_metric([str(index)], float(self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
            used.add_metric([str(index)], float(memory.used))
            total.add_metric([str(index)], float(memory.total))
        yield from (utilization, used, total)
