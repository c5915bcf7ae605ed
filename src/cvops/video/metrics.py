"""Prometheus metrics of the video pipeline, per camera.

Counters are read from each camera's :class:`~cvops.video.frames.CameraStats` at scrape time (a
custom collector), so the hot path only increments plain integers; the capture-to-result
latency is a histogram observed per processed frame, and so are the detections per frame and
their scores (the same metrics as the model server's, so one set of rules covers both).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cvops.serving.metrics import DetectionMetrics
from cvops.video.frames import CameraStats, DropReason

LATENCY_BUCKETS_S = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class VideoMetrics:
    """Per-camera counters, queue depths and latency; one instance per pipeline."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        """Register the metrics in ``registry``."""
        self._cameras: dict[str, tuple[CameraStats, Callable[[], int]]] = {}
        self._lock = threading.Lock()
        self.latency_seconds = Histogram(
            "cvops_video_latency_seconds", "Capture (frame left the decoder) to result written.",
            ["camera"], buckets=LATENCY_BUCKETS_S, registry=registry,
        )  # fmt: skip
        self.detections = DetectionMetrics(registry)
        registry.register(_CameraCollector(self))

    def add_camera(self, camera_id: str, stats: CameraStats, queue_depth: Callable[[], int]) -> None:
        """Export ``stats`` and the live ``queue_depth()`` of a camera."""
        with self._lock:
            self._cameras[camera_id] = (stats, queue_depth)
        self.latency_seconds.labels(camera_id)

    def cameras(self) -> list[tuple[str, CameraStats, Callable[[], int]]]:
        """Return the registered cameras."""
        with self._lock:
            return [(name, stats, depth) for name, (stats, depth) in self._cameras.items()]


class _CameraCollector(Collector):
    def __init__(self, metrics: VideoMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        counters = {
            name: CounterMetricFamily(f"cvops_video_{name}", help_text, labels=["camera"])
            for name, help_text in (
                ("frames_read", "Frames decoded from the source."),
                ("frames_processed", "Frames detected, tracked and written."),
                ("frames_corrupt", "Frames or images that could not be decoded (skipped)."),
                ("reconnects", "Times a live source was reopened."),
                ("stalls", "Times the watchdog found a live source silent."),
            )
        }
        dropped = CounterMetricFamily(
            "cvops_video_frames_dropped", "Frames not processed, by reason.", labels=["camera", "reason"]
        )
        depth = GaugeMetricFamily(
            "cvops_video_queue_depth", "Frames waiting in the camera's queue.", labels=["camera"]
        )
        for camera, stats, queue_depth in self._metrics.cameras():
            with stats.lock:
                values = {
                    "frames_read": stats.frames_read,
                    "frames_processed": stats.frames_processed,
                    "frames_corrupt": stats.frames_corrupt,
                    "reconnects": stats.reconnects,
                    "stalls": stats.stalls,
                }
                drops = {reason.value: stats.dropped.get(reason.value, 0) for reason in DropReason}
            for name, value in values.items():
                counters[name].add_metric([camera], value)
            for reason, value in drops.items():
                dropped.add_metric([camera, reason], value)
            depth.add_metric([camera], queue_depth())
        yield from counters.values()
        yield dropped
        yield depth
