"""One tracker per camera stream, evicted when idle and bounded in number."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from cvops.errors import InvalidInputError

TrackerT = TypeVar("TrackerT")


class StreamTrackers(Generic[TrackerT]):
    """Trackers keyed by ``stream_id``.

    A stream unseen for ``ttl_s`` seconds loses its tracker (its next frame starts new ids); when
    ``max_streams`` are live, the least recently used one is dropped to admit a new stream, so
    memory stays bounded whatever clients send. Thread-safe.
    """

    def __init__(
        self,
        new_tracker: Callable[[], TrackerT],
        ttl_s: float = 300.0,
        max_streams: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create an empty registry.

        Args:
            new_tracker: Makes the tracker of a new stream.
            ttl_s: Idle time after which a stream's tracker is dropped.
            max_streams: Most streams kept at once.
            clock: Seconds, monotonic; injectable for tests.
        """
        if ttl_s <= 0 or max_streams < 1:
            raise InvalidInputError(f"expected ttl_s > 0 and max_streams >= 1, got {ttl_s}, {max_streams}")
        self._new_tracker = new_tracker
        self._ttl_s = ttl_s
        self._max_streams = max_streams
        self._clock = clock
        self._streams: OrderedDict[str, tuple[TrackerT, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Return the number of live streams."""
        return len(self._streams)

    def get(self, stream_id: str) -> TrackerT:
        """Return the stream's tracker, creating it if new or expired."""
        now = self._clock()
        with self._lock:
            self._evict_idle(now)
            entry = self._streams.pop(stream_id, None)
            tracker = entry[0] if entry is not None else self._new_tracker()
            while len(self._streams) >= self._max_streams:
                self._streams.popitem(last=False)
            self._streams[stream_id] = (tracker, now)
            return tracker

    def _evict_idle(self, now: float) -> None:
        # Entries are in last-use order, so the idle ones are at the front.
        while self._streams:
            stream_id, (_, last_seen) = next(iter(self._streams.items()))
            if now - last_seen <= self._ttl_s:
                break
            del self._streams[stream_id]
