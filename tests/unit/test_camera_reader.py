"""CameraReader with in-memory sources: end of source, open failure, stall watchdog, stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np

from cvops.errors import SourceOpenError
from cvops.video.capture import CameraReader
from cvops.video.frames import CameraStats, VideoFrame
from cvops.video.queues import FrameQueue, QueuePolicy


def frame(index: int) -> VideoFrame:
    return VideoFrame("fake", index, index / 25, time.monotonic(), np.zeros((2, 2, 3), np.uint8))


class ListSource:
    """A file-like source: yields its frames and ends."""

    def __init__(self, count: int) -> None:
        self.camera_id, self.is_live, self.stats = "fake", False, CameraStats()
        self.count = count

    def frames(self) -> Iterator[VideoFrame]:
        yield from (frame(i) for i in range(self.count))

    def close(self) -> None:
        pass


class BrokenSource(ListSource):
    def frames(self) -> Iterator[VideoFrame]:
        raise SourceOpenError("cannot open rtsp://127.0.0.1:9/x: Connection refused")


class StallingSource:
    """A live source that goes silent after ``burst`` frames until it is asked to reconnect."""

    def __init__(self, burst: int) -> None:
        self.camera_id, self.is_live, self.stats = "fake", True, CameraStats()
        self.burst = burst
        self.requests: list[float] = []
        self._wake = threading.Event()
        self._closed = threading.Event()

    def frames(self) -> Iterator[VideoFrame]:
        index = 0
        while not self._closed.is_set():
            for _ in range(self.burst):
                yield frame(index)
                index += 1
            self._wake.clear()
            while not self._wake.wait(0.01):  # silent: like a read that waits for the server
                if self._closed.is_set():
                    return
            self.stats.reconnects += 1

    def request_reconnect(self, silent_for_s: float) -> None:
        self.requests.append(silent_for_s)
        self._wake.set()

    def close(self) -> None:
        self._closed.set()


def test_reader_delivers_a_finite_source_and_closes_the_queue() -> None:
    source = ListSource(20)
    queue = FrameQueue(100, QueuePolicy.BLOCK, source.stats)
    reader = CameraReader(source, queue)
    reader.start()
    reader.join(5)
    assert not reader.is_alive
    assert reader.error is None
    assert queue.closed
    assert source.stats.frames_read == 20
    assert [queue.get(timeout_s=1).index for _ in range(20)] == list(range(20))  # type: ignore[union-attr]
    assert queue.get(timeout_s=1) is None


def test_open_failure_is_kept_on_the_reader_and_closes_the_queue() -> None:
    source = BrokenSource(0)
    queue = FrameQueue(4, QueuePolicy.DROP_OLDEST, source.stats)
    reader = CameraReader(source, queue)
    reader.start()
    reader.join(5)
    assert reader.error == "cannot open rtsp://127.0.0.1:9/x: Connection refused"
    assert queue.closed
    assert queue.get(timeout_s=1) is None


def test_watchdog_counts_one_stall_per_silence_and_asks_for_a_reconnect() -> None:
    source = StallingSource(burst=3)
    queue = FrameQueue(100, QueuePolicy.DROP_OLDEST, source.stats)
    reader = CameraReader(source, queue, stall_timeout_s=0.2)
    reader.start()
    deadline = time.monotonic() + 5
    while source.stats.frames_read < 9 and time.monotonic() < deadline:
        time.sleep(0.02)
    reader.stop()
    reader.join(5)
    assert source.stats.frames_read >= 9  # two silences, each ended by a forced reconnect
    assert source.stats.stalls >= 2
    assert len(source.requests) >= source.stats.stalls
    assert all(silent_for_s >= 0.2 for silent_for_s in source.requests)
    assert not reader.is_alive


def test_waiting_for_room_in_a_blocking_queue_is_not_a_stall() -> None:
    source = StallingSource(burst=1000)
    queue = FrameQueue(2, QueuePolicy.BLOCK, source.stats)
    reader = CameraReader(source, queue, stall_timeout_s=0.1)
    reader.start()
    time.sleep(0.5)  # nobody consumes: the reader waits in put()
    assert source.stats.stalls == 0
    assert source.stats.frames_read == 3  # two queued, one waiting for room
    started = time.monotonic()
    reader.stop()
    reader.join(5)
    assert time.monotonic() - started < 1.0
    assert not reader.is_alive
