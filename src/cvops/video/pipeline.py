"""Cameras to results: one reader thread and bounded queue per camera, one detection worker.

The worker takes at most one frame from each camera per round (so each camera's frames stay in
order and no camera starves the others), runs the detector once on that cross-camera batch, then
tracks each frame with its camera's tracker and hands the result to every sink. Overload is
handled where frames wait, in the queues, by their policy; nothing else grows with load.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from cvops.config import DetectorSettings
from cvops.contracts.wire import FrameResult, frame_result
from cvops.detection.detector import Detector
from cvops.detection.types import Detections
from cvops.errors import CvopsError, InvalidInputError
from cvops.tracking.base import FrameTracker
from cvops.video.capture import CameraReader
from cvops.video.frames import CameraStats, DropReason, FrameSource, VideoFrame
from cvops.video.metrics import VideoMetrics
from cvops.video.queues import FrameQueue, QueuePolicy
from cvops.video.sinks import Sink

LATENCY_SAMPLES = 20_000  # per camera, for the summary's percentiles; bounded so memory stays flat
_IDLE_WAIT_S = 0.002


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    """How frames flow.

    Attributes:
        policy: What a full camera queue does: ``block`` (offline: nothing is dropped),
            ``drop_oldest`` (live: the freshest frame wins) or ``drop_newest``.
        queue_size: Frames each camera's queue holds.
        lag_budget_s: Adaptive mode: a frame older than this when its turn comes is skipped.
        max_batch_size: Most frames (one per camera) per detector call. 1 by default: on a CPU a
            batch costs what its frames cost one by one, and waiting for it adds latency
            (``benchmarks/video_pipeline.py``); raise it on a GPU.
        stall_timeout_s: Silence after which a live source is reconnected.
        detector: Thresholds for the detector; its defaults when None.
        warmup_hw: Run the detector once on a black frame of this (height, width) before the
            cameras start, so the runtime's first, slow call does not hit live frames; None skips.
    """

    policy: QueuePolicy = QueuePolicy.DROP_OLDEST
    queue_size: int = 1
    lag_budget_s: float | None = None
    max_batch_size: int = 1
    stall_timeout_s: float = 5.0
    detector: DetectorSettings | None = None
    warmup_hw: tuple[int, int] | None = (480, 640)

    def __post_init__(self) -> None:
        """Reject settings that cannot run."""
        if self.queue_size < 1 or self.max_batch_size < 1 or self.stall_timeout_s <= 0:
            raise InvalidInputError(
                "expected queue_size >= 1, max_batch_size >= 1 and stall_timeout_s > 0, got "
                f"{self.queue_size}, {self.max_batch_size}, {self.stall_timeout_s}"
            )
        if self.lag_budget_s is not None and self.lag_budget_s <= 0:
            raise InvalidInputError(f"lag_budget_s: expected > 0, got {self.lag_budget_s}")


@dataclass(slots=True)
class CameraSummary:
    """What happened to one camera's frames."""

    camera_id: str
    frames_read: int
    frames_processed: int
    frames_corrupt: int
    dropped: dict[str, int]
    reconnects: int
    stalls: int
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    processed_fps: float
    error: str | None


@dataclass(slots=True)
class PipelineSummary:
    """The whole run."""

    wall_s: float
    cameras: list[CameraSummary] = field(default_factory=list)

    @property
    def frames_processed(self) -> int:
        """Return the frames processed over all cameras."""
        return sum(c.frames_processed for c in self.cameras)


@dataclass(slots=True)
class _Camera:
    source: FrameSource
    queue: FrameQueue
    reader: CameraReader
    tracker: FrameTracker | None
    latencies_s: deque[float]


class VideoPipeline:
    """Runs a detector (and a tracker per camera) over several sources into sinks."""

    def __init__(
        self,
        sources: Sequence[FrameSource],
        detector: Detector,
        sinks: Sequence[Sink] = (),
        settings: PipelineSettings | None = None,
        new_tracker: Callable[[], FrameTracker] | None = None,
        metrics: VideoMetrics | None = None,
        model_name: str = "detector",
        model_version: str = "",
    ) -> None:
        """Wire sources to a detector and sinks; nothing starts until :meth:`run`.

        Args:
            sources: The cameras; their ``camera_id`` must be distinct.
            detector: Runs on batches of frames from different cameras.
            sinks: Receive every processed frame; closed (flushed) when the run ends.
            settings: Flow control; PipelineSettings() when None.
            new_tracker: Makes each camera's tracker; no tracking when None.
            metrics: Prometheus metrics to export into.
            model_name: Reported in every FrameResult.
            model_version: Reported in every FrameResult.
        """
        names = [s.camera_id for s in sources]
        if not names:
            raise InvalidInputError("expected at least one source")
        if len(set(names)) != len(names):
            raise InvalidInputError(f"camera ids must be distinct, got {names}")
        self.settings = settings or PipelineSettings()
        self.detector = detector
        self.sinks = list(sinks)
        self.metrics = metrics
        self.model_name = model_name
        self.model_version = model_version
        self._cameras: list[_Camera] = []
        for source in sources:
            queue = FrameQueue(
                self.settings.queue_size, self.settings.policy, source.stats, self.settings.lag_budget_s
            )
            self._cameras.append(
                _Camera(
                    source,
                    queue,
                    CameraReader(source, queue, stall_timeout_s=self.settings.stall_timeout_s),
                    new_tracker() if new_tracker is not None else None,
                    deque(maxlen=LATENCY_SAMPLES),
                )
            )
            if metrics is not None:
                metrics.add_camera(source.camera_id, source.stats, queue.__len__)

    def camera_stats(self) -> list[tuple[str, CameraStats, Callable[[], int]]]:
        """Return each camera's id, live counters and queue depth (for displays)."""
        return [(c.source.camera_id, c.source.stats, c.queue.__len__) for c in self._cameras]

    def run(
        self, stop: threading.Event | None = None, on_result: Callable[[FrameResult], None] | None = None
    ) -> PipelineSummary:
        """Process until every source ends or ``stop`` is set; flush the sinks; summarize.

        Args:
            stop: Set from another thread (e.g. on Ctrl-C) to end the run cleanly.
            on_result: Called with each frame's result (e.g. a live display).
        """
        stop = stop or threading.Event()
        if self.settings.warmup_hw is not None:
            self.detector.detect([np.zeros((*self.settings.warmup_hw, 3), np.uint8)], self.settings.detector)
        start = time.monotonic()
        for camera in self._cameras:
            camera.reader.start()
        try:
            self._work(stop, on_result)
        finally:
            for camera in self._cameras:
                camera.reader.stop()
            for camera in self._cameras:
                camera.reader.join(5.0)
            self._close_sinks()
        return self._summary(time.monotonic() - start)

    def _close_sinks(self) -> None:
        """Close every sink even if one fails; then raise the first failure."""
        failures: list[CvopsError] = []
        for sink in self.sinks:
            try:
                sink.close()
            except CvopsError as error:
                failures.append(error)
        if failures:
            raise failures[0]

    def _work(self, stop: threading.Event, on_result: Callable[[FrameResult], None] | None) -> None:
        first = 0
        n = len(self._cameras)
        while not stop.is_set():
            batch: list[tuple[_Camera, VideoFrame]] = []
            for k in range(n):
                camera = self._cameras[(first + k) % n]
                frame = camera.queue.get_nowait()
                if frame is not None:
                    batch.append((camera, frame))
                    if len(batch) == self.settings.max_batch_size:
                        break
            first = (first + 1) % n
            if batch:
                self._process(batch, on_result)
            elif all(c.queue.closed and not len(c.queue) for c in self._cameras):
                return
            else:
                # Nothing queued: wait on one camera briefly rather than spin.
                camera = self._cameras[first]
                frame = camera.queue.get(_IDLE_WAIT_S)
                if frame is not None:
                    self._process([(camera, frame)], on_result)

    def _process(
        self, batch: list[tuple[_Camera, VideoFrame]], on_result: Callable[[FrameResult], None] | None
    ) -> None:
        start = time.perf_counter()
        try:
            found = self.detector.detect([frame.image for _, frame in batch], self.settings.detector)
        except CvopsError:
            # A failing (remote) detector costs this batch, not the run; the drop is counted.
            for camera, _ in batch:
                camera.source.stats.count_drop(DropReason.DETECTOR_ERROR)
            return
        detect_ms = (time.perf_counter() - start) * 1e3 / len(batch)
        for (camera, frame), detections in zip(batch, found, strict=True):
            result = self._track_and_write(camera, frame, detections, detect_ms)
            if on_result is not None:
                on_result(result)

    def _track_and_write(
        self, camera: _Camera, frame: VideoFrame, detections: Detections, detect_ms: float
    ) -> FrameResult:
        start = time.perf_counter()
        if camera.tracker is not None:
            detections = camera.tracker.update(detections, frame.image)
        track_ms = (time.perf_counter() - start) * 1e3
        result = frame_result(
            detections,
            frame.image.shape,
            (self.model_name, self.model_version),
            (frame.camera_id, frame.index, frame.pts_s),
            {
                "detect": detect_ms,
                "track": track_ms,
                "capture_to_result": (time.monotonic() - frame.captured_at_s) * 1e3,
            },
        )
        for sink in self.sinks:
            sink.write(frame, result, detections)
        stats = camera.source.stats
        with stats.lock:
            stats.frames_processed += 1
        latency_s = time.monotonic() - frame.captured_at_s  # to the result written by every sink
        camera.latencies_s.append(latency_s)
        if self.metrics is not None:
            self.metrics.latency_seconds.labels(frame.camera_id).observe(latency_s)
            self.metrics.detections.observe_frame(self.model_name, detections)
        return result

    def _summary(self, wall_s: float) -> PipelineSummary:
        summary = PipelineSummary(wall_s)
        for camera in self._cameras:
            stats: CameraStats = camera.source.stats
            latencies = np.array(camera.latencies_s) * 1e3
            with stats.lock:
                summary.cameras.append(
                    CameraSummary(
                        camera_id=camera.source.camera_id,
                        frames_read=stats.frames_read,
                        frames_processed=stats.frames_processed,
                        frames_corrupt=stats.frames_corrupt,
                        dropped=dict(stats.dropped),
                        reconnects=stats.reconnects,
                        stalls=stats.stalls,
                        latency_ms_p50=float(np.percentile(latencies, 50)) if len(latencies) else None,
                        latency_ms_p99=float(np.percentile(latencies, 99)) if len(latencies) else None,
                        processed_fps=stats.frames_processed / wall_s if wall_s > 0 else 0.0,
                        error=camera.reader.error,
                    )
                )
        return summary
