"""Frames in, FrameResults out: decoding, detection, per-stream tracking, timings.

Framework-free, so the KServe predictor, the canary router and tests share one implementation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from cvops.config import DetectorSettings
from cvops.contracts.wire import FrameResult, frame_result
from cvops.detection.detector import Detector
from cvops.detection.types import Detections
from cvops.errors import InvalidInputError
from cvops.serving.metrics import ServingMetrics
from cvops.serving.streams import StreamTrackers
from cvops.tracking.base import FrameTracker
from cvops.tracking.gallery import CrossCameraGallery

ImageArray = npt.NDArray[np.uint8]

DEFAULT_MAX_PIXELS = 40_000_000  # 40 MP: above any camera frame, far below a decompression bomb


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame and what the request said about it."""

    image: ImageArray
    stream_id: str | None = None
    frame_index: int | None = None
    timestamp: float | None = None
    score_threshold: float | None = None
    iou_threshold: float | None = None


class DetectionService:
    """Runs a detector on frames and tracks objects per stream."""

    def __init__(
        self,
        detector: Detector,
        model_name: str,
        model_version: str,
        settings: DetectorSettings,
        streams: StreamTrackers[FrameTracker],
        metrics: ServingMetrics | None = None,
        gallery: CrossCameraGallery | None = None,
    ) -> None:
        """Wire a loaded detector to the stream registry.

        Args:
            detector: The loaded detector.
            model_name: Name reported in every result.
            model_version: Version reported in every result.
            settings: Default thresholds; a request may override them.
            streams: Per-stream trackers.
            metrics: Where to record inference time, batch sizes and detections.
            gallery: Gives tracks of all streams global ids by appearance, when the trackers embed;
                streams are the cameras and their frames' ``timestamp`` (else the server's clock)
                must come from one clock.
        """
        self.detector = detector
        self.model_name = model_name
        self.model_version = model_version
        self.settings = settings
        self.streams = streams
        self.metrics = metrics
        self.gallery = gallery
        # Frames of one stream must reach its tracker in order, one at a time.
        self._tracking_lock = threading.Lock()

    def infer(self, frames: Sequence[Frame]) -> list[FrameResult]:
        """Detect in each frame (one batch per distinct threshold setting) and track streams."""
        if not frames:
            raise InvalidInputError("frames: expected at least one frame, got none")
        results: list[FrameResult | None] = [None] * len(frames)
        groups: dict[DetectorSettings, list[int]] = {}
        for index, frame in enumerate(frames):
            groups.setdefault(self._settings_for(frame), []).append(index)
        for settings, indices in groups.items():
            start = time.perf_counter()
            found = self.detector.detect([frames[i].image for i in indices], settings)
            elapsed_s = time.perf_counter() - start
            detect_ms = elapsed_s * 1e3 / len(indices)
            if self.metrics is not None:
                self.metrics.inference_seconds.labels(self.model_name, self.model_version).observe(elapsed_s)
                self.metrics.batch_size.labels(self.model_name).observe(len(indices))
            for i, detections in zip(indices, found, strict=True):
                results[i] = self._result(frames[i], detections, detect_ms)
        return [r for r in results if r is not None]

    def _settings_for(self, frame: Frame) -> DetectorSettings:
        return replace(
            self.settings,
            score_threshold=self.settings.score_threshold
            if frame.score_threshold is None
            else frame.score_threshold,
            iou_threshold=self.settings.iou_threshold if frame.iou_threshold is None else frame.iou_threshold,
        )

    def _with_global_ids(self, frame: Frame, stream_id: str, detections: Detections) -> Detections:
        assert self.gallery is not None
        global_ids = np.full(len(detections), -1, np.int64)
        if detections.track_ids is None:
            return detections.with_global_ids(global_ids)
        tracked = detections.track_ids > 0
        if detections.embeddings is not None:
            embedded = tracked & (np.abs(detections.embeddings).sum(axis=1) > 0)
            if embedded.any():
                timestamp_s = time.time() if frame.timestamp is None else frame.timestamp
                global_ids[embedded] = self.gallery.assign_frame(
                    stream_id, detections.track_ids[embedded], detections.embeddings[embedded], timestamp_s
                )
            tracked &= ~embedded
        global_ids[tracked] = self.gallery.lookup(stream_id, detections.track_ids[tracked])
        return detections.with_global_ids(global_ids)

    def _result(self, frame: Frame, detections: Detections, detect_ms: float) -> FrameResult:
        track_ms = 0.0
        if frame.stream_id is not None:
            start = time.perf_counter()
            with self._tracking_lock:
                detections = self.streams.get(frame.stream_id).update(detections, frame.image)
            if self.gallery is not None:
                detections = self._with_global_ids(frame, frame.stream_id, detections)
            track_ms = (time.perf_counter() - start) * 1e3
        if self.metrics is not None:
            self.metrics.observe_frame(self.model_name, detections)
            self.metrics.active_streams.labels(self.model_name).set(len(self.streams))
        return frame_result(
            detections,
            frame.image.shape,
            (self.model_name, self.model_version),
            (frame.stream_id, frame.frame_index, frame.timestamp),
            {"detect": detect_ms, "track": track_ms},
        )
