"""Per-camera aggregates of frame features over consecutive 1-minute windows.

These are the numbers the Feast view ``camera_window_features`` (``feature_repo/views.py``)
serves. A window's row is stamped at the window's end (or its last frame for a window cut short),
the moment its numbers are known: a point-in-time join never sees a window before it closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cvops.errors import InvalidInputError
from cvops.features.frame_features import FrameFeatures

WINDOW_S = 60.0  # the "_1m" of the feature names


@dataclass(frozen=True, slots=True)
class CameraWindowFeatures:
    """Aggregates of one camera's frames over one window.

    Attributes:
        camera_id: The camera (Feast entity ``camera``).
        event_timestamp: The window's end: its start + 60 s, or its last frame's time when the
            window was closed early (:meth:`CameraWindow.flush`); timezone-aware UTC.
        frame_count_1m: Frames in the window.
        detection_count_mean_1m: Mean detections per frame.
        brightness_gray_mean_1m: Mean of the frames' ``brightness_gray``.
        blur_laplacian_var_mean_1m: Mean of the frames' ``blur_laplacian_var``.
        fps_1m: Processed frames per second: ``(frames - 1) / (last - first frame time)``;
            0.0 with fewer than 2 frames or no time between them.
    """

    camera_id: str
    event_timestamp: datetime
    frame_count_1m: int
    detection_count_mean_1m: float
    brightness_gray_mean_1m: float
    blur_laplacian_var_mean_1m: float
    fps_1m: float


class CameraWindow:
    """Accumulates one camera's frame features; emits a row each time a 60 s window closes.

    Windows are consecutive and start at the camera's first frame (then each previous start +
    60 s, skipping empty windows). Frames must come in time order; an older frame is counted in
    the current window rather than rejected (clocks step back; a monitor must not crash on that).
    """

    def __init__(self, camera_id: str) -> None:
        """Start an empty window for ``camera_id``."""
        self.camera_id = camera_id
        self._start: datetime | None = None
        self._first: datetime | None = None
        self._last: datetime | None = None
        self._frames = 0
        self._detections = 0
        self._brightness = 0.0
        self._blur = 0.0

    def add(self, features: FrameFeatures) -> CameraWindowFeatures | None:
        """Count a frame; return the previous window's row when this frame starts a new window.

        Raises:
            InvalidInputError: When the frame belongs to another camera.
        """
        if features.camera_id != self.camera_id:
            raise InvalidInputError(f"camera_id: expected {self.camera_id!r}, got {features.camera_id!r}")
        timestamp = features.event_timestamp
        closed = None
        if self._start is None:
            self._start = timestamp
        elif timestamp >= self._start + timedelta(seconds=WINDOW_S):
            closed = self._row(self._start + timedelta(seconds=WINDOW_S))
            windows = (timestamp - self._start) // timedelta(seconds=WINDOW_S)
            self._reset(self._start + windows * timedelta(seconds=WINDOW_S))
        if self._first is None:
            self._first = timestamp
        self._last = max(self._last or timestamp, timestamp)
        self._frames += 1
        self._detections += features.detection_count
        self._brightness += features.brightness_gray
        self._blur += features.blur_laplacian_var
        return closed

    def flush(self) -> CameraWindowFeatures | None:
        """Close the current window early (at its last frame); None when it holds no frames."""
        if self._frames == 0 or self._last is None:
            return None
        row = self._row(self._last)
        self._reset(None)
        return row

    def _row(self, end: datetime) -> CameraWindowFeatures:
        assert self._first is not None
        assert self._last is not None
        span_s = (self._last - self._first).total_seconds()
        n = self._frames
        return CameraWindowFeatures(
            camera_id=self.camera_id,
            event_timestamp=end,
            frame_count_1m=n,
            detection_count_mean_1m=self._detections / n,
            brightness_gray_mean_1m=self._brightness / n,
            blur_laplacian_var_mean_1m=self._blur / n,
            fps_1m=(n - 1) / span_s if n >= 2 and span_s > 0 else 0.0,
        )

    def _reset(self, start: datetime | None) -> None:
        self._start = start
        self._first = self._last = None
        self._frames = self._detections = 0
        self._brightness = self._blur = 0.0
