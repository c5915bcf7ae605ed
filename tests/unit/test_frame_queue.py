"""FrameQueue: what each policy keeps and drops, the lag budget, closing, and the size bound."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cvops.errors import InvalidInputError
from cvops.video.frames import CameraStats, VideoFrame
from cvops.video.queues import FrameQueue, QueuePolicy
from tests.conftest import FakeClock

_PIXELS = np.zeros((2, 2, 3), np.uint8)


def frame(index: int, captured_at_s: float = 0.0) -> VideoFrame:
    return VideoFrame("cam", index, index / 25, captured_at_s, _PIXELS)


def drain(queue: FrameQueue) -> list[int]:
    indices = []
    while (taken := queue.get_nowait()) is not None:
        indices.append(taken.index)
    return indices


@pytest.mark.parametrize(
    ("policy", "accepted", "kept", "dropped"),
    [
        (QueuePolicy.DROP_OLDEST, [True] * 10, [7, 8, 9], {"queue_full_oldest": 7}),
        (QueuePolicy.DROP_NEWEST, [True] * 3 + [False] * 7, [0, 1, 2], {"queue_full_newest": 7}),
    ],
    ids=["drop_oldest-keeps-newest", "drop_newest-keeps-first"],
)
def test_full_queue_keeps_and_counts_by_policy(
    policy: QueuePolicy, accepted: list[bool], kept: list[int], dropped: dict[str, int]
) -> None:
    stats = CameraStats()
    queue = FrameQueue(3, policy, stats)
    results = []
    for i in range(10):
        results.append(queue.put(frame(i)))
        assert len(queue) <= 3
    assert results == accepted
    assert drain(queue) == kept
    assert dict(stats.dropped) == dropped


def test_block_delivers_every_frame_in_order_through_a_small_queue() -> None:
    stats = CameraStats()
    queue = FrameQueue(2, "block", stats)
    sizes: list[int] = []

    def produce() -> None:
        for i in range(200):
            assert queue.put(frame(i))
            sizes.append(len(queue))
        queue.close()

    producer = threading.Thread(target=produce)
    producer.start()
    received = []
    while (taken := queue.get(timeout_s=5)) is not None:
        received.append(taken.index)
        if taken.index % 50 == 0:
            time.sleep(0.01)  # a slow consumer: the producer must wait, not grow the queue
    producer.join(5)
    assert received == list(range(200))
    assert max(sizes) <= 2
    assert sum(stats.dropped.values()) == 0


def test_block_put_returns_false_when_closed_while_waiting() -> None:
    queue = FrameQueue(1, QueuePolicy.BLOCK, CameraStats())
    assert queue.put(frame(0))
    outcome: list[bool] = []
    producer = threading.Thread(target=lambda: outcome.append(queue.put(frame(1))))
    producer.start()
    time.sleep(0.05)
    assert producer.is_alive()  # waiting for room
    queue.close()
    producer.join(2)
    assert outcome == [False]
    assert drain(queue) == [0]


def test_lag_budget_drops_stale_frames_when_taken() -> None:
    stats, clock = CameraStats(), FakeClock()
    queue = FrameQueue(10, QueuePolicy.DROP_OLDEST, stats, lag_budget_s=1.0, clock=clock)
    for i in range(4):
        queue.put(frame(i, captured_at_s=float(i)))
    clock.now = 3.0  # ages 3, 2, 1, 0: frame 2 is exactly at the budget and is kept
    assert queue.get(timeout_s=0) is not None
    assert stats.dropped["lag"] == 2
    clock.now = 10.0
    assert queue.get_nowait() is None  # frame 3 is 7 s old
    assert stats.dropped["lag"] == 3
    assert len(queue) == 0


def test_lag_budget_keeps_waiting_for_a_fresh_frame() -> None:
    stats, clock = CameraStats(), FakeClock()
    queue = FrameQueue(4, QueuePolicy.BLOCK, stats, lag_budget_s=0.5, clock=clock)
    queue.put(frame(0, captured_at_s=0.0))
    clock.now = 5.0
    threading.Timer(0.05, lambda: queue.put(frame(1, captured_at_s=5.0))).start()
    taken = queue.get(timeout_s=2)
    assert taken is not None
    assert taken.index == 1
    assert stats.dropped["lag"] == 1


def test_get_times_out_with_none() -> None:
    queue = FrameQueue(1, QueuePolicy.DROP_OLDEST, CameraStats())
    start = time.monotonic()
    assert queue.get(timeout_s=0.1) is None
    assert 0.09 <= time.monotonic() - start < 1.0


def test_close_wakes_a_waiting_consumer_after_draining() -> None:
    queue = FrameQueue(3, QueuePolicy.DROP_NEWEST, CameraStats())
    queue.put(frame(0))
    queue.close()
    assert queue.closed
    assert not queue.put(frame(1))  # refused, and not counted as a drop
    assert sum(queue.stats.dropped.values()) == 0
    first = queue.get(timeout_s=1)
    assert first is not None
    assert first.index == 0
    assert queue.get() is None  # closed and drained: no wait even without a timeout

    waiting = FrameQueue(1, QueuePolicy.BLOCK, CameraStats())
    results: list[VideoFrame | None] = []
    consumer = threading.Thread(target=lambda: results.append(waiting.get()))
    consumer.start()
    time.sleep(0.05)
    waiting.close()
    consumer.join(2)
    assert results == [None]


@pytest.mark.parametrize(
    ("maxsize", "policy", "lag_budget_s"),
    [(0, "block", None), (1, "drop_random", None), (1, "block", 0.0)],
    ids=["zero-size", "unknown-policy", "zero-lag-budget"],
)
def test_invalid_arguments_are_refused(maxsize: int, policy: str, lag_budget_s: float | None) -> None:
    with pytest.raises(InvalidInputError, match="expected"):
        FrameQueue(maxsize, policy, CameraStats(), lag_budget_s=lag_budget_s)
