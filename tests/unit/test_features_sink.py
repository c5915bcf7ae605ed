"""FeatureSink on inline frames: buffering, flush policy, window rows at close, skipped frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cvops.contracts.wire import FrameResult, frame_result
from cvops.detection.types import Detections
from cvops.errors import CvopsError, InvalidInputError
from cvops.features.offline_store import CAMERA_WINDOW_TABLE, FRAME_TABLE
from cvops.video.feature_sink import FeatureSink
from cvops.video.frames import VideoFrame
from tests.conftest import FakeClock, dets

EPOCH_2026_S = 1_767_268_800.0  # 2026-01-01T12:00:00Z


def _write(sink: FeatureSink, camera_id: str, index: int, image: np.ndarray, detections: Detections) -> None:
    frame = VideoFrame(camera_id, index, index / 25, 0.0, image)
    result: FrameResult = frame_result(
        detections, image.shape, ("m", "1"), (camera_id, index, index / 25), {}
    )
    sink.write(frame, result, detections)


def _rows(folder: Path) -> list[dict[str, object]]:
    files = sorted(folder.glob("*.parquet"))
    return [row for path in files for row in pq.read_table(path).to_pylist()]


@pytest.fixture
def clock() -> FakeClock:
    clock = FakeClock()
    clock.now = EPOCH_2026_S
    return clock


def test_rows_are_written_every_n_frames_and_at_close(tmp_path: Path, clock: FakeClock) -> None:
    sink = FeatureSink(tmp_path, flush_every_n=3, flush_interval_s=1e9, clock=clock)
    image = np.full((6, 8, 3), 40, np.uint8)
    for index in range(7):
        clock.now += 0.04
        _write(sink, "cam0" if index % 2 == 0 else "cam1", index, image, dets([[0, 0, 2, 2]], scores=[0.8]))

    assert len(list((tmp_path / FRAME_TABLE).glob("*.parquet"))) == 2  # after frames 3 and 6
    sink.close()
    sink.close()  # a second close does nothing

    rows = _rows(tmp_path / FRAME_TABLE)
    assert sorted(r["frame_index"] for r in rows) == list(range(7))
    assert {r["camera_id"] for r in rows} == {"cam0", "cam1"}
    assert all(r["detection_count"] == 1 and r["brightness_gray"] == pytest.approx(40.0) for r in rows)
    assert sink.frames_written == 7
    windows = {r["camera_id"]: r for r in _rows(tmp_path / CAMERA_WINDOW_TABLE)}
    assert (windows["cam0"]["frame_count_1m"], windows["cam1"]["frame_count_1m"]) == (4, 3)
    assert windows["cam0"]["fps_1m"] == pytest.approx(3 / 0.24)  # 4 frames over 6 ticks of 40 ms


def test_interval_flush_and_a_closed_minute_window(tmp_path: Path, clock: FakeClock) -> None:
    sink = FeatureSink(tmp_path, flush_every_n=1000, flush_interval_s=30.0, clock=clock)
    image = np.zeros((4, 4, 3), np.uint8)
    _write(sink, "cam0", 0, image, Detections.empty())
    clock.now += 61.0  # a minute later: the first window closes, and the interval is over
    _write(sink, "cam0", 1, image, Detections.empty())

    assert len(_rows(tmp_path / FRAME_TABLE)) == 2
    (window,) = _rows(tmp_path / CAMERA_WINDOW_TABLE)
    assert window["frame_count_1m"] == 1
    assert window["event_timestamp"].timestamp() == pytest.approx(EPOCH_2026_S + 60.0)


def test_unusable_frames_are_skipped_and_counted(tmp_path: Path, clock: FakeClock) -> None:
    sink = FeatureSink(tmp_path, clock=clock)
    _write(sink, "cam0", 0, np.zeros((4, 4, 4), np.uint8), Detections.empty())
    _write(sink, "cam0", 1, np.zeros((4, 4, 3), np.uint8), Detections.empty())
    sink.close()

    assert sink.frames_skipped["cam0"] == 1
    assert [r["frame_index"] for r in _rows(tmp_path / FRAME_TABLE)] == [1]
    with pytest.raises(CvopsError, match="after close"):
        _write(sink, "cam0", 2, np.zeros((4, 4, 3), np.uint8), Detections.empty())


@pytest.mark.parametrize(
    ("every_n", "interval_s", "message"),
    [(0, 1.0, "flush_every_n"), (1, 0.0, "flush_interval_s")],
    ids=["every-n-zero", "interval-zero"],
)
def test_bad_flush_settings_are_refused(
    tmp_path: Path, every_n: int, interval_s: float, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        FeatureSink(tmp_path, flush_every_n=every_n, flush_interval_s=interval_s)
