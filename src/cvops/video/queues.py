"""A bounded, thread-safe frame queue between a camera reader and its consumers.

The policy says what happens when the consumer is slower than the camera:

- ``block``: the producer waits for room. Nothing is lost; latency grows up to ``maxsize`` frames
  and a live camera's own buffer fills instead (use it for files and offline runs).
- ``drop_oldest``: the oldest queued frame makes room for the new one. The consumer always
  sees the freshest frames (real time first; the usual choice for live cameras).
- ``drop_newest``: the new frame is refused. The consumer keeps a contiguous run of frames.

With ``lag_budget_s`` set (adaptive mode), :meth:`FrameQueue.get` also drops frames that have
waited longer than the budget since they left the decoder, so a consumer that fell behind
catches up instead of working on stale frames. Every frame dropped is counted in the camera's
:class:`~cvops.video.frames.CameraStats` under its :class:`~cvops.video.frames.DropReason`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from cvops.errors import InvalidInputError
from cvops.video.frames import CameraStats, DropReason, VideoFrame


class QueuePolicy(StrEnum):
    """What :meth:`FrameQueue.put` does when the queue is full."""

    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


class FrameQueue:
    """At most ``maxsize`` frames of one camera, in arrival order. Thread-safe.

    Closing the queue wakes every waiting producer and consumer: producers stop (``put`` returns
    False), consumers drain what is left, then ``get`` returns None.
    """

    def __init__(
        self,
        maxsize: int,
        policy: QueuePolicy | str,
        stats: CameraStats,
        lag_budget_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create an empty, open queue.

        Args:
            maxsize: Most frames held at once (>= 1).
            policy: What ``put`` does when the queue is full (a :class:`QueuePolicy` or its value).
            stats: The camera's counters; drops are added to ``stats.dropped``.
            lag_budget_s: Adaptive mode: the oldest age (``clock() - frame.captured_at_s``, seconds)
                a frame may have when a consumer takes it; older frames are dropped (reason LAG).
                None keeps every frame that was queued.
            clock: The clock ``captured_at_s`` was read from (``time.monotonic``); injectable for
                tests. Waiting for frames uses the real monotonic clock.
        """
        if maxsize < 1:
            raise InvalidInputError(f"expected maxsize >= 1, got {maxsize}")
        if lag_budget_s is not None and lag_budget_s <= 0:
            raise InvalidInputError(f"expected lag_budget_s > 0 or None, got {lag_budget_s}")
        try:
            self.policy = QueuePolicy(policy)
        except ValueError as error:
            expected = ", ".join(p.value for p in QueuePolicy)
            raise InvalidInputError(f"expected a queue policy in ({expected}), got {policy!r}") from error
        self.maxsize = maxsize
        self.stats = stats
        self.lag_budget_s = lag_budget_s
        self._clock = clock
        self._frames: deque[VideoFrame] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False

    def put(self, frame: VideoFrame) -> bool:
        """Offer one frame; return True when it was queued.

        ``block`` waits until there is room (False if the queue is closed meanwhile);
        ``drop_oldest`` always queues it, evicting the oldest frame when full;
        ``drop_newest`` refuses it when full. A closed queue refuses every frame (not counted
        as a drop: the pipeline is stopping).
        """
        with self._lock:
            if self.policy is QueuePolicy.BLOCK:
                while len(self._frames) >= self.maxsize and not self._closed:
                    self._not_full.wait()
            if self._closed:
                return False
            if len(self._frames) >= self.maxsize:
                if self.policy is QueuePolicy.DROP_NEWEST:
                    self.stats.count_drop(DropReason.QUEUE_FULL_NEWEST)
                    return False
                self._frames.popleft()
                self.stats.count_drop(DropReason.QUEUE_FULL_OLDEST)
            self._frames.append(frame)
            self._not_empty.notify()
            return True

    def get(self, timeout_s: float | None = None) -> VideoFrame | None:
        """Take the oldest frame, waiting up to ``timeout_s`` seconds (None: until one comes).

        Returns:
            The frame; None when the wait timed out, or when the queue is closed and drained.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            while True:
                frame = self._take_fresh()
                if frame is not None or self._closed:
                    return frame
                if deadline is None:
                    self._not_empty.wait()
                    continue
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    return None
                self._not_empty.wait(remaining_s)

    def get_nowait(self) -> VideoFrame | None:
        """Take the oldest frame that is within the lag budget, or None at once when there is none."""
        with self._lock:
            return self._take_fresh()

    def close(self) -> None:
        """Refuse new frames and wake every waiting producer and consumer. Idempotent."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (frames may still be waiting to be drained)."""
        with self._lock:
            return self._closed

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)

    def _take_fresh(self) -> VideoFrame | None:
        """Pop frames (caller holds the lock) until one is within the lag budget."""
        while self._frames:
            frame = self._frames.popleft()
            self._not_full.notify()
            if self.lag_budget_s is None or self._clock() - frame.captured_at_s <= self.lag_budget_s:
                return frame
            self.stats.count_drop(DropReason.LAG)
        return None
