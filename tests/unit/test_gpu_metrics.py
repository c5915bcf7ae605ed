from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest

from cvops.serving.gpu import GpuCollector, open_nvml
from cvops.serving.metrics import ServingMetrics


class _FakeNvml:
    """Stands in for NVML: no GPU exists on the development machines."""

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=1000 * (handle + 1), total=8000)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=40 + handle)


def test_gpu_collector_with_fake_nvml_reports_each_device() -> None:
    registry = CollectorRegistry()
    registry.register(GpuCollector(_FakeNvml()))
    text = generate_latest(registry).decode()
    assert 'cvops_gpu_utilization_percent{gpu="1"} 41.0' in text
    assert 'cvops_gpu_memory_used_bytes{gpu="0"} 1000.0' in text


def test_without_a_gpu_no_gpu_series_exist_rather_than_zeros() -> None:
    if open_nvml() is not None:
        return  # a GPU machine: covered by the collector test above
    registry = CollectorRegistry()
    ServingMetrics(registry)
    assert "cvops_gpu_" not in generate_latest(registry).decode()
