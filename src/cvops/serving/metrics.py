"""Prometheus metrics of the detection server (served on ``/metrics`` by KServe's app)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from cvops.detection.types import Detections
from cvops.serving.gpu import GpuCollector, open_nvml

LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
COUNT_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 300)
# One gauge per process for every circuit breaker (model registry, router upstreams).
BREAKER_STATE = Gauge("cvops_breaker_state", "0 closed, 1 half-open, 2 open.", ["dependency"])
REJECT_REASONS = ("auth", "forbidden", "rate", "in_flight", "size", "content_type", "invalid")


class DetectionMetrics:
    """Detections per frame and their confidence, by model.

    One definition for the model server and the video pipeline, so the same alert rules
    (confidence collapse) and dashboard panels cover both; the ``job`` label tells them apart.
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        """Register the histograms in ``registry``."""
        self.per_frame = Histogram(
            "cvops_detections_per_frame", "Detections returned per frame.", ["model"],
            buckets=COUNT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.score = Histogram(
            "cvops_detection_score", "Confidence of returned detections, by class.",
            ["model", "class_name"], buckets=SCORE_BUCKETS, registry=registry,
        )  # fmt: skip

    def observe_frame(self, model: str, detections: Detections) -> None:
        """Record one frame's detection count and score distribution."""
        self.per_frame.labels(model=model).observe(len(detections))
        for name, score in zip(detections.class_names, detections.scores.tolist(), strict=True):
            self.score.labels(model=model, class_name=name).observe(score)


class ServingMetrics:
    """All server metrics; one instance per process (tests pass their own registry)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        """Register the metrics in ``registry``."""
        self.request_seconds = Histogram(
            "cvops_request_seconds", "Request latency, arrival to response.",
            ["model", "protocol", "code"], buckets=LATENCY_BUCKETS_S, registry=registry,
        )  # fmt: skip
        self.inference_seconds = Histogram(
            "cvops_inference_seconds", "Detector time per batch.",
            ["model", "version"], buckets=LATENCY_BUCKETS_S, registry=registry,
        )  # fmt: skip
        self.batch_size = Histogram(
            "cvops_batch_size", "Frames per detector call.", ["model"],
            buckets=(1, 2, 4, 8, 16, 32), registry=registry,
        )  # fmt: skip
        self.detections = DetectionMetrics(registry)
        self.detections_per_frame = self.detections.per_frame
        self.detection_score = self.detections.score
        self.active_streams = Gauge(
            "cvops_active_streams", "Streams with a live tracker.", ["model"], registry=registry
        )
        self.model_reloads = Counter(
            "cvops_model_reloads", "Model package reloads, by result (loaded, refused).", ["result"],
            registry=registry,
        )  # fmt: skip
        self.in_flight = Gauge("cvops_requests_in_flight", "Requests being served.", registry=registry)
        self.rejected = Counter(
            "cvops_rejected_requests", "Requests refused, by reason.", ["reason"], registry=registry
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason=reason)  # export zeros, so rates exist before the first refusal
        nvml = open_nvml()
        if nvml is not None:
            registry.register(GpuCollector(nvml))

    def observe_frame(self, model: str, detections: Detections) -> None:
        """Record one frame's detection count and score distribution."""
        self.detections.observe_frame(model, detections)
