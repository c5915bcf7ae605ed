from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from cvops.detection.types import Detections
from cvops.errors import InvalidInputError
from cvops.tracking.base import Tracker
from cvops.tracking.bytetrack import ByteTracker, ByteTrackSettings
from cvops.tracking.forecast import ConstantVelocityForecaster, DampedAccelerationForecaster, Forecaster
from cvops.tracking.iou_tracker import IouTracker
from cvops.tracking.kalman import KalmanBoxFilter, xyah_to_xyxy, xyxy_to_xyah
from tests.conftest import dets


def box_at(x: float, y: float = 100.0, w: float = 40.0, h: float = 80.0) -> list[float]:
    return [x, y, x + w, y + h]


def ids_of(result: Detections) -> list[int]:
    assert result.track_ids is not None
    return result.track_ids.tolist()


def test_kalman_box_conversions_round_trip() -> None:
    boxes = np.array([[10, 20, 50, 100], [0, 0, 1, 3]], np.float64)
    np.testing.assert_allclose(xyah_to_xyxy(xyxy_to_xyah(boxes)), boxes, atol=1e-9)


def test_kalman_learns_constant_velocity() -> None:
    kalman = KalmanBoxFilter()
    mean, cov = kalman.initiate(xyxy_to_xyah(np.array([box_at(0)])))
    for frame in range(1, 30):
        mean, cov = kalman.predict(mean, cov)
        mean, cov = kalman.update(mean, cov, xyxy_to_xyah(np.array([box_at(5.0 * frame)])))
    assert mean[0, 4] == pytest.approx(5.0, abs=0.1)  # pixels per frame in x
    assert mean[0, 5] == pytest.approx(0.0, abs=0.1)
    assert np.all(np.linalg.eigvalsh(cov[0]) > 0)


@pytest.mark.parametrize("forecaster", [DampedAccelerationForecaster(), ConstantVelocityForecaster(), None])
def test_a_moving_object_keeps_its_id_and_reports_velocity_and_forecast(
    forecaster: Forecaster | None,
) -> None:
    tracker = ByteTracker(ByteTrackSettings(forecast_frames=10), forecaster=forecaster)
    results = [tracker.update(dets([box_at(5.0 * f), box_at(400 - 3.0 * f, 300)])) for f in range(20)]
    assert all(ids_of(r) == [1, 2] for r in results)
    last = results[-1]
    assert last.velocities_xy is not None
    assert last.forecasts_xyxy is not None
    np.testing.assert_allclose(last.velocities_xy, [[5.0, 0.0], [-3.0, 0.0]], atol=0.3)
    np.testing.assert_allclose(last.forecasts_xyxy[0], box_at(5.0 * 29), atol=4.0)


def test_new_objects_after_the_first_frame_need_a_second_sighting() -> None:
    tracker = ByteTracker()
    tracker.update(dets([box_at(0)]))
    assert ids_of(tracker.update(dets([box_at(0), box_at(300)]))) == [1, -1]
    assert ids_of(tracker.update(dets([box_at(0), box_at(300)]))) == [1, 2]


def test_a_one_frame_false_positive_never_gets_an_id() -> None:
    tracker = ByteTracker()
    tracker.update(dets([box_at(0)]))
    tracker.update(dets([box_at(0), box_at(300)]))
    assert ids_of(tracker.update(dets([box_at(0)]))) == [1]
    assert ids_of(tracker.update(dets([box_at(0), box_at(600)]))) == [1, -1]


@pytest.mark.parametrize(
    ("second_score", "expected"),
    [
        (0.2, [1]),  # low score continues the track (ByteTrack's second stage)
        (0.05, [-1]),  # below low_score: ignored
    ],
)
def test_low_score_boxes_continue_tracks_but_never_start_them(
    second_score: float, expected: list[int]
) -> None:
    tracker = ByteTracker()
    tracker.update(dets([box_at(0)], scores=[0.9]))
    assert ids_of(tracker.update(dets([box_at(2)], scores=[second_score]))) == expected
    fresh = ByteTracker()
    assert ids_of(fresh.update(dets([box_at(0)], scores=[0.2]))) == [-1]


@pytest.mark.parametrize(("frames_unseen", "expected_id"), [(5, 1), (40, 2)])
def test_lost_tracks_come_back_within_the_buffer_only(frames_unseen: int, expected_id: int) -> None:
    tracker = ByteTracker(ByteTrackSettings(track_buffer=30))
    tracker.update(dets([box_at(0)]))
    tracker.update(dets([box_at(0)]))
    for _ in range(frames_unseen):
        tracker.update(Detections.empty())
    tracker.update(dets([box_at(0)]))
    assert ids_of(tracker.update(dets([box_at(0)]))) == [expected_id]


def test_boxes_of_another_class_do_not_continue_a_track() -> None:
    tracker = ByteTracker()
    tracker.update(dets([box_at(0)], class_ids=[0]))
    assert ids_of(tracker.update(dets([box_at(0)], class_ids=[1]))) == [-1]
    agnostic = ByteTracker(ByteTrackSettings(class_aware=False))
    agnostic.update(dets([box_at(0)], class_ids=[0]))
    assert ids_of(agnostic.update(dets([box_at(0)], class_ids=[1]))) == [1]


def test_ids_count_per_tracker_instance() -> None:
    first, second = ByteTracker(), ByteTracker()
    assert ids_of(first.update(dets([box_at(0), box_at(200)]))) == [1, 2]
    assert ids_of(second.update(dets([box_at(0)]))) == [1]


def test_track_count_stays_within_max_tracks() -> None:
    tracker = ByteTracker(ByteTrackSettings(max_tracks=5))
    for frame in range(10):
        boxes = [box_at(1000.0 * frame + 60 * i, 50) for i in range(4)]
        result = tracker.update(dets(boxes))
        assert len(result) == 4
    assert tracker.active_tracks <= 5


def test_empty_frames_and_frames_with_nothing_tracked_work() -> None:
    tracker = ByteTracker()
    empty = tracker.update(Detections.empty())
    assert len(empty) == 0
    assert ids_of(empty) == []
    assert ids_of(tracker.update(dets([box_at(0)]))) == [-1]


@pytest.mark.parametrize(("use_appearance", "expected"), [(False, [1, 2]), (True, [2, 1])])
def test_appearance_decides_when_two_objects_meet_and_motion_is_ambiguous(
    use_appearance: bool, expected: list[int]
) -> None:
    left, right = np.eye(4, dtype=np.float32)[0], np.eye(4, dtype=np.float32)[1]
    tracker = ByteTracker()
    for _ in range(3):
        frame = dets([box_at(100), box_at(120)])
        if use_appearance:
            frame = frame.with_embeddings(np.stack([left, right]))
        assert ids_of(tracker.update(frame)) == [1, 2]
    # Both boxes now sit between the two tracks; by position alone the left box is track 1's.
    met = dets([box_at(110), box_at(111)])
    if use_appearance:
        met = met.with_embeddings(np.stack([right, left]))
    assert ids_of(tracker.update(met)) == expected


@pytest.mark.parametrize(
    "settings",
    [
        {"low_score": 0.7, "high_score": 0.5},
        {"match_cost": 0.0},
        {"track_buffer": -1},
        {"max_tracks": 0},
        {"history_frames": 0},
    ],
)
def test_settings_that_cannot_track_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        ByteTrackSettings(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(("compensated", "expected"), [(True, [1]), (False, [-1])])
def test_camera_motion_compensation_moves_tracks_with_the_camera(
    compensated: bool, expected: list[int]
) -> None:
    tracker = ByteTracker()
    for _ in range(3):
        tracker.update(dets([box_at(100)]))
    if compensated:
        tracker.compensate(np.array([[1.0, 0.0, 100.0], [0.0, 1.0, 0.0]]))  # the camera panned 100 px left
    assert ids_of(tracker.update(dets([box_at(200)]))) == expected


def test_appearance_is_wanted_for_new_crowded_or_unembedded_boxes_only() -> None:
    tracker = ByteTracker()
    frame = dets([box_at(0), box_at(300), box_at(320)])
    assert tracker.appearance_wanted(frame).tolist() == [True, True, True]  # no tracks yet
    embedded = frame.with_embeddings(np.eye(3, 8, dtype=np.float32))
    tracker.update(embedded)
    later = dets([box_at(1), box_at(600), box_at(310)], scores=[0.9, 0.9, 0.9])
    # 1 px from one embedded track: no; far from all: yes (new); between two tracks: yes (ambiguous).
    assert tracker.appearance_wanted(later).tolist() == [False, True, True]
    low = dets([box_at(600)], scores=[0.2])
    assert tracker.appearance_wanted(low).tolist() == [False]  # low-score boxes never use appearance


@pytest.mark.parametrize("new_tracker", [ByteTracker, IouTracker], ids=["bytetrack", "iou"])
def test_trackers_keep_each_box_class_scores(new_tracker: Callable[[], Tracker]) -> None:
    tracker = new_tracker()
    class_scores = np.array([[0.9, 0.1], [0.3, 0.8]], np.float32)
    for x in range(3):
        found = Detections.from_arrays(
            [box_at(x), box_at(300 + x)], [0.9, 0.8], [0, 1], ("a", "b"), class_scores=class_scores
        )
        tracked = tracker.update(found)
    assert tracked.class_scores is not None
    np.testing.assert_array_equal(tracked.class_scores, class_scores)
