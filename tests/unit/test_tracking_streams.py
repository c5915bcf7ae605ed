from __future__ import annotations

import pytest

from cvops.errors import InvalidInputError
from cvops.serving.streams import StreamTrackers
from cvops.tracking.iou_tracker import IouTracker
from tests.conftest import FakeClock, dets


def test_iou_tracker_keeps_ids_for_moving_boxes_and_starts_new_ones() -> None:
    tracker = IouTracker(iou_threshold=0.3, max_age=1)
    first = tracker.update(dets([[0, 0, 10, 10], [50, 50, 60, 60]]))
    second = tracker.update(dets([[52, 51, 62, 61], [1, 0, 11, 10], [100, 100, 110, 110]]))
    assert first.track_ids is not None
    assert second.track_ids is not None
    assert first.track_ids.tolist() == [1, 2]
    assert second.track_ids.tolist() == [2, 1, 3]


def test_iou_tracker_does_not_match_across_classes_and_ends_old_tracks() -> None:
    tracker = IouTracker(iou_threshold=0.3, max_age=1)
    tracker.update(dets([[0, 0, 10, 10]], class_ids=[0]))
    other_class = tracker.update(dets([[0, 0, 10, 10]], class_ids=[1]))
    assert other_class.track_ids is not None
    assert other_class.track_ids.tolist() == [2]
    tracker.update(dets([[90, 90, 99, 99]], class_ids=[2]))
    tracker.update(dets([[90, 90, 99, 99]], class_ids=[2]))
    assert tracker.active_tracks == 1  # tracks 1 and 2 went unseen for more than max_age frames


def test_two_trackers_count_ids_independently() -> None:
    a, b = IouTracker(), IouTracker()
    a.update(dets([[0, 0, 10, 10], [20, 20, 30, 30]]))
    fresh = b.update(dets([[0, 0, 10, 10]]))
    assert fresh.track_ids is not None
    assert fresh.track_ids.tolist() == [1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"iou_threshold": 0.0}, "iou_threshold"), ({"max_age": -1}, "max_age")],
    ids=["zero-iou", "negative-age"],
)
def test_iou_tracker_rejects_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        IouTracker(**kwargs)  # type: ignore[arg-type]


def test_stream_trackers_evict_idle_streams_and_stay_bounded() -> None:
    clock = FakeClock()
    streams = StreamTrackers(IouTracker, ttl_s=10.0, max_streams=2, clock=clock)
    cam_a = streams.get("a")
    assert streams.get("a") is cam_a
    clock.now = 11.0
    assert streams.get("a") is not cam_a, "an idle stream starts over"
    streams.get("b")
    streams.get("c")  # full: the least recently used stream ("a") goes
    assert len(streams) == 2
    b = streams.get("b")
    assert streams.get("b") is b
    with pytest.raises(InvalidInputError, match="max_streams"):
        StreamTrackers(IouTracker, max_streams=0)
