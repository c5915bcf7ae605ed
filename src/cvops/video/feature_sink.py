"""A video sink that records per-frame features and per-camera window aggregates for Feast.

Each processed frame becomes a :class:`~cvops.features.frame_features.FrameFeatures` row stamped
with the wall-clock time the sink received it (UTC), and feeds its camera's 1-minute
:class:`~cvops.features.camera_window.CameraWindow`. Rows are buffered and appended to the
offline store (:mod:`cvops.features.offline_store`) as one parquet file per flush; ``feast
materialize`` then loads them into the online store.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cvops.contracts.wire import FrameResult
from cvops.detection.types import Detections
from cvops.errors import CvopsError, InvalidInputError
from cvops.features.camera_window import CameraWindow, CameraWindowFeatures
from cvops.features.frame_features import FrameFeatures, frame_features
from cvops.features.offline_store import write_camera_window_features, write_frame_features
from cvops.video.frames import VideoFrame

logger = logging.getLogger(__name__)


class FeatureSink:
    """Computes frame features and appends them, with camera window rows, to the offline store.

    Buffered rows are written every ``flush_every_n`` frames, or at the first frame
    ``flush_interval_s`` after the previous write, and on :meth:`close` (which also closes every
    camera's current window early). Few, larger files keep Feast's reads fast: a killed process
    loses at most the rows of one flush period. A frame whose pixels are not a usable image is
    skipped and counted in ``frames_skipped``.
    """

    def __init__(
        self,
        offline_dir: Path,
        *,
        flush_every_n: int = 1000,
        flush_interval_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Prepare buffers; files are written at the first flush.

        Args:
            offline_dir: The offline folder (``cvops.features.store.offline_dir(repo)``).
            flush_every_n: Write after this many buffered frames (>= 1).
            flush_interval_s: Write when a frame comes this long after the last write (> 0).
            clock: Wall-clock seconds since the epoch: each frame's event time and the flush
                timer; injectable for tests.

        Raises:
            InvalidInputError: When a flush setting is out of range.
        """
        if flush_every_n < 1:
            raise InvalidInputError(f"flush_every_n: expected >= 1, got {flush_every_n}")
        if not flush_interval_s > 0.0:
            raise InvalidInputError(f"flush_interval_s: expected > 0, got {flush_interval_s}")
        self.offline_dir = offline_dir
        self.frames_skipped: Counter[str] = Counter()
        self.frames_written = 0
        self._flush_every_n = flush_every_n
        self._flush_interval_s = flush_interval_s
        self._clock = clock
        self._frames: list[FrameFeatures] = []
        self._windows: list[CameraWindowFeatures] = []
        self._cameras: dict[str, CameraWindow] = {}
        self._last_flush_s = clock()
        self._is_closed = False

    def write(self, frame: VideoFrame, result: FrameResult, detections: Detections) -> None:
        """Compute the frame's features and buffer them (``result`` is not used).

        Raises:
            CvopsError: When a flush cannot write its file (the message names it).
        """
        if self._is_closed:
            raise CvopsError("FeatureSink: write after close")
        now_s = self._clock()
        try:
            features = frame_features(
                frame.image,
                detections,
                frame.camera_id,
                datetime.fromtimestamp(now_s, UTC),
                frame_index=frame.index,
                pts_s=frame.pts_s,
            )
        except InvalidInputError as error:
            self.frames_skipped[frame.camera_id] += 1
            level = logging.WARNING if self.frames_skipped[frame.camera_id] == 1 else logging.DEBUG
            logger.log(level, "camera %s frame %d skipped: %s", frame.camera_id, frame.index, error)
            return
        self._frames.append(features)
        window = self._cameras.setdefault(frame.camera_id, CameraWindow(frame.camera_id))
        closed = window.add(features)
        if closed is not None:
            self._windows.append(closed)
        if len(self._frames) >= self._flush_every_n or now_s - self._last_flush_s >= self._flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows now (at most one file per table).

        Raises:
            CvopsError: When a file cannot be written; the rows stay buffered for the next try.
        """
        write_frame_features(self._frames, self.offline_dir)
        self.frames_written += len(self._frames)
        self._frames = []
        write_camera_window_features(self._windows, self.offline_dir)
        self._windows = []
        self._last_flush_s = self._clock()

    def close(self) -> None:
        """Close every camera's window early and write everything; later calls do nothing."""
        if self._is_closed:
            return
        self._is_closed = True
        for window in self._cameras.values():
            row = window.flush()
            if row is not None:
                self._windows.append(row)
        self.flush()
