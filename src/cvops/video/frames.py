"""The records every video stage exchanges: a decoded frame and the counters of its camera."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

ImageArray = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True, eq=False)
class VideoFrame:
    """One decoded frame of one camera.

    Attributes:
        camera_id: The camera (source) it came from.
        index: 0-based position among the frames the source decoded (before sampling), so a gap
            in ``index`` between two delivered frames says how many were skipped.
        pts_s: Presentation timestamp in seconds in the stream's own time base; None when the
            container has none (image folders use ``index / fps``).
        captured_at_s: ``time.monotonic()`` when the frame left the decoder: the start of the
            capture-to-result latency.
        image: Pixels, shape (H, W, 3), uint8, BGR.
    """

    camera_id: str
    index: int
    pts_s: float | None
    captured_at_s: float
    image: ImageArray


class DropReason(StrEnum):
    """Why a frame was not processed."""

    QUEUE_FULL_OLDEST = "queue_full_oldest"  # drop_oldest: an older queued frame made room
    QUEUE_FULL_NEWEST = "queue_full_newest"  # drop_newest: the new frame was refused
    LAG = "lag"  # adaptive mode: the frame was older than the lag budget when its turn came
    SAMPLING = "sampling"  # every-Nth / target-fps sampling skipped it (not an overload)
    DETECTOR_ERROR = "detector_error"  # the detector (e.g. a remote endpoint) failed on its batch


@dataclass(slots=True)
class CameraStats:
    """Counters of one camera, updated from several threads (take ``lock`` to read a consistent set)."""

    frames_read: int = 0
    frames_processed: int = 0
    frames_corrupt: int = 0
    reconnects: int = 0
    stalls: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_drop(self, reason: DropReason, n: int = 1) -> None:
        """Add ``n`` dropped frames for ``reason``."""
        with self.lock:
            self.dropped[reason.value] += n


class FrameSource(Protocol):
    """A camera, stream, file or image folder that yields decoded frames in order."""

    camera_id: str
    is_live: bool  # True for RTSP/HTTP streams and devices: frames keep coming in real time
    stats: CameraStats

    def frames(self) -> Iterator[VideoFrame]:
        """Yield frames until the source ends or :meth:`close` is called.

        Raises:
            SourceOpenError: When the source cannot be opened at all (one line naming it and why).
        """
        ...

    def close(self) -> None:
        """Stop :meth:`frames` from any thread and release the decoder."""
        ...
