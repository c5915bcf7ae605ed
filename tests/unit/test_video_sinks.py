"""Result sinks write real files that read back: JSONL, MOTChallenge text, MP4 and the crop pool."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from cvops.contracts.detections import detection_records
from cvops.contracts.wire import FrameResult
from cvops.detection.types import Detections
from cvops.errors import CvopsError, InvalidInputError
from cvops.tracking.mot_files import read_mot_file
from cvops.video.frames import VideoFrame
from cvops.video.sinks import (
    AnnotatedVideoSink,
    CropSink,
    JsonlSink,
    MotSink,
    Sink,
    camera_file_stem,
)
from tests.conftest import FakeClock, dets, fixture_path

WIDTH, HEIGHT = 640, 272  # bikes.mp4


@pytest.fixture(scope="module")
def bikes() -> list[tuple[np.ndarray, float]]:
    """The first 24 frames of the bikes clip: (BGR image, pts in seconds)."""
    decoded = []
    with av.open(str(fixture_path("video/bikes.mp4"))) as container:
        for frame in container.decode(video=0):
            decoded.append((frame.to_ndarray(format="bgr24"), float(frame.time)))
            if len(decoded) == 24:
                break
    return decoded


def _frame(image: np.ndarray, index: int, pts_s: float | None = None, camera_id: str = "cam1") -> VideoFrame:
    return VideoFrame(camera_id=camera_id, index=index, pts_s=pts_s, captured_at_s=0.0, image=image)


def _tracked(index: int) -> Detections:
    """Three boxes moving right: tracks 1 and 2, and one unassigned (-1) box."""
    shift = float(index)
    detections = dets(
        [[10 + shift, 20, 60 + shift, 120], [300, 40.5, 380.25, 200], [500, 100, 560, 180]],
        scores=[0.9, 0.6, 0.3],
        class_ids=[0, 1, 2],
        vocabulary=("person", "bicycle", "car"),
    )
    return detections.with_tracks(
        np.array([1, 2, -1], np.int64), np.zeros((3, 2), np.float32), detections.xyxy.copy()
    )


def _result(frame: VideoFrame, detections: Detections) -> FrameResult:
    height, width = frame.image.shape[:2]
    return FrameResult(
        model_name="yolo",
        model_version="1",
        stream_id=frame.camera_id,
        frame_index=frame.index,
        timestamp=frame.pts_s,
        width=width,
        height=height,
        detections=detection_records(detections),
        timings_ms={"detect": 1.0},
    )


def _write(sink: Sink, frame: VideoFrame, detections: Detections | None = None) -> None:
    detections = _tracked(frame.index) if detections is None else detections
    sink.write(frame, _result(frame, detections), detections)


def _decode(path: Path) -> tuple[int, list[tuple[int, int]], list[float]]:
    """Return (frames in the header, (width, height) of each decoded frame, their times)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return stream.frames, [(f.width, f.height) for f in frames], [float(f.time) for f in frames]


# --- JsonlSink --------------------------------------------------------------------------------------


def test_jsonl_lines_validate_and_append(tmp_path: Path, bikes: list[tuple[np.ndarray, float]]) -> None:
    path = tmp_path / "out" / "results.jsonl"
    sink = JsonlSink(path)
    for index, (image, pts_s) in enumerate(bikes[:5]):
        _write(sink, _frame(image, index, pts_s, camera_id=f"cam{index % 2}"))
    sink.close()
    again = JsonlSink(path)  # a second run appends
    _write(again, _frame(bikes[5][0], 5, bikes[5][1]))
    again.close()

    results = [FrameResult.model_validate_json(line) for line in path.read_text().splitlines()]
    assert [r.frame_index for r in results] == [0, 1, 2, 3, 4, 5]
    assert [r.stream_id for r in results] == ["cam0", "cam1", "cam0", "cam1", "cam0", "cam1"]
    assert results[0].width == WIDTH
    assert results[0].height == HEIGHT
    assert [d.track_id for d in results[3].detections] == [1, 2, -1]


def test_jsonl_flushes_every_n_lines_and_after_the_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "results.jsonl"
    sink = JsonlSink(path, flush_every_n=3, flush_interval_s=10.0, clock=clock)
    image = np.zeros((8, 8, 3), np.uint8)

    def lines_on_disk() -> int:
        return len(path.read_text().splitlines())

    _write(sink, _frame(image, 0))
    _write(sink, _frame(image, 1))
    assert lines_on_disk() == 0  # still buffered: a kill now loses at most flush_every_n - 1 lines
    _write(sink, _frame(image, 2))
    assert lines_on_disk() == 3
    _write(sink, _frame(image, 3))
    assert lines_on_disk() == 3
    clock.now = 10.0
    _write(sink, _frame(image, 4))
    assert lines_on_disk() == 5
    _write(sink, _frame(image, 5))
    sink.close()
    assert lines_on_disk() == 6


@pytest.mark.parametrize(
    ("every_n", "interval_s", "match"),
    [(0, 1.0, "flush_every_n"), (1, 0.0, "flush_interval_s")],
    ids=["every_n_zero", "interval_zero"],
)
def test_jsonl_rejects_bad_flush_settings(
    tmp_path: Path, every_n: int, interval_s: float, match: str
) -> None:
    with pytest.raises(InvalidInputError, match=match):
        JsonlSink(tmp_path / "r.jsonl", flush_every_n=every_n, flush_interval_s=interval_s)


def test_jsonl_unwritable_path_is_a_cvops_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CvopsError, match=r"file.*could not create the folder"):
        JsonlSink(blocker / "results.jsonl")


# --- MotSink ----------------------------------------------------------------------------------------


def test_mot_file_reads_back_tracked_boxes_only(
    tmp_path: Path, bikes: list[tuple[np.ndarray, float]]
) -> None:
    sink = MotSink(tmp_path / "mot")
    indices = [0, 2, 4, 6]  # sampled every 2nd decoded frame
    for index in indices:
        _write(sink, _frame(bikes[index][0], index, bikes[index][1]))
    _write(sink, _frame(bikes[1][0], 1, camera_id="cam2"), dets([[0, 0, 5, 5]]))  # no track ids
    sink.close()

    rows = read_mot_file(tmp_path / "mot" / "cam1.txt")
    np.testing.assert_array_equal(rows.frame, np.repeat([1, 3, 5, 7], 2))
    np.testing.assert_array_equal(rows.track_id, [1, 2] * 4)
    np.testing.assert_allclose(rows.xywh[2], [12, 20, 50, 100])  # frame 3 (index 2): shifted by 2
    np.testing.assert_allclose(rows.xywh[1], [300, 40.5, 80.25, 159.5])
    np.testing.assert_allclose(rows.score, [0.9, 0.6] * 4, rtol=1e-6)
    assert (tmp_path / "mot" / "cam1.txt").read_text().splitlines()[0] == "1,1,10,20,50,100,0.9,-1,-1,-1"
    assert len(read_mot_file(tmp_path / "mot" / "cam2.txt")) == 0


def test_mot_streams_lines_as_it_goes(tmp_path: Path) -> None:
    sink = MotSink(tmp_path, flush_every_n=1)
    image = np.zeros((8, 8, 3), np.uint8)
    _write(sink, _frame(image, 0))
    assert len(read_mot_file(tmp_path / "cam1.txt")) == 2  # on disk before close
    _write(sink, _frame(image, 1))
    assert len(read_mot_file(tmp_path / "cam1.txt")) == 4
    sink.close()


# --- AnnotatedVideoSink -----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", [None, "mpeg4"], ids=["default", "mpeg4"])
def test_video_reads_back_with_every_frame(
    tmp_path: Path, bikes: list[tuple[np.ndarray, float]], codec: str | None
) -> None:
    sink = AnnotatedVideoSink(tmp_path / "video", codec=codec)
    indices = list(range(0, 24, 2))  # every 2nd frame: timestamps keep the gaps
    for index in indices:
        _write(sink, _frame(bikes[index][0], index, bikes[index][1]))
    sink.close()

    count, sizes, times = _decode(tmp_path / "video" / "cam1.mp4")
    assert count == len(indices)
    assert sizes == [(WIDTH, HEIGHT)] * len(indices)
    np.testing.assert_allclose(times, [bikes[i][1] - bikes[0][1] for i in indices], atol=1e-3)


def test_video_default_codec_is_h264_when_available(tmp_path: Path) -> None:
    sink = AnnotatedVideoSink(tmp_path)
    assert sink.codec == ("libx264" if "libx264" in av.codecs_available else "mpeg4")
    sink.close()


def test_video_draws_the_boxes(tmp_path: Path, bikes: list[tuple[np.ndarray, float]]) -> None:
    image = bikes[0][0]
    sink = AnnotatedVideoSink(tmp_path, crf=0)
    _write(sink, _frame(image, 0, 0.0))
    sink.close()
    with av.open(str(tmp_path / "cam1.mp4")) as container:
        decoded = next(container.decode(video=0)).to_ndarray(format="bgr24")
    # The left edge of track 1's box (x = 10, y 20..120) is painted; away from boxes, pixels are kept.
    assert np.abs(decoded[40:100, 9:12].astype(int) - image[40:100, 9:12]).mean() > 20
    assert np.abs(decoded[200:260, 100:200].astype(int) - image[200:260, 100:200]).mean() < 4


def test_video_fits_odd_and_changed_sizes_and_skips_bad_frames(
    tmp_path: Path, bikes: list[tuple[np.ndarray, float]]
) -> None:
    odd = cv2.copyMakeBorder(bikes[0][0], 0, 1, 0, 1, cv2.BORDER_REPLICATE)  # 641 x 273
    sink = AnnotatedVideoSink(tmp_path, fps=10.0)
    _write(sink, _frame(odd, 0))  # no pts: timed at index / fps
    _write(sink, _frame(cv2.resize(bikes[1][0], (320, 136)), 1))  # resolution changed
    _write(sink, _frame(np.zeros((HEIGHT, WIDTH), np.uint8), 2))  # grayscale: skipped
    _write(sink, _frame(bikes[3][0], 3))
    sink.close()

    count, sizes, times = _decode(tmp_path / "cam1.mp4")
    assert count == 3
    assert sizes == [(WIDTH, HEIGHT)] * 3
    np.testing.assert_allclose(times, [0.0, 0.1, 0.3], atol=1e-3)
    assert sink.frames_skipped == {"cam1": 1}


def test_video_keeps_pts_increasing_when_a_stream_restarts(
    tmp_path: Path, bikes: list[tuple[np.ndarray, float]]
) -> None:
    sink = AnnotatedVideoSink(tmp_path)
    for index, pts_s in enumerate([100.0, 100.04, 100.08, 0.0, 0.04]):  # the source restarted at 0
        _write(sink, _frame(bikes[index][0], index, pts_s))
    sink.close()
    count, _, times = _decode(tmp_path / "cam1.mp4")
    assert count == 5
    assert all(later > earlier for earlier, later in itertools.pairwise(times))


def test_video_one_file_per_camera(tmp_path: Path, bikes: list[tuple[np.ndarray, float]]) -> None:
    sink = AnnotatedVideoSink(tmp_path)
    for index in range(6):
        _write(
            sink, _frame(bikes[index][0], index, bikes[index][1], camera_id=("a", "rtsp://h/1")[index % 2])
        )
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["a.mp4", f"{camera_file_stem('rtsp://h/1')}.mp4"]
    )
    assert _decode(tmp_path / "a.mp4")[0] == 3


def test_video_open_failure_names_the_folder(tmp_path: Path, bikes: list[tuple[np.ndarray, float]]) -> None:
    folder = tmp_path / "video"
    sink = AnnotatedVideoSink(folder)
    folder.rmdir()
    folder.write_text("the output volume went away")
    with pytest.raises(CvopsError, match=r"video: could not create the folder"):
        _write(sink, _frame(bikes[0][0], 0, 0.0))
    _write(sink, _frame(bikes[1][0], 1, 0.04))  # that camera's later frames are skipped, not raised
    assert sink.frames_skipped == {"cam1": 1}
    sink.close()


def test_video_write_failure_stops_that_camera_only(
    tmp_path: Path, bikes: list[tuple[np.ndarray, float]]
) -> None:
    sink = AnnotatedVideoSink(tmp_path)
    (tmp_path / "bad.mp4").mkdir()  # FFmpeg cannot open a folder for writing
    errors = []
    for index in range(24):
        for camera_id in ("bad", "good"):
            try:
                _write(sink, _frame(bikes[index][0], index, bikes[index][1], camera_id=camera_id))
            except CvopsError as error:
                errors.append(str(error))
    sink.close()
    assert len(errors) == 1  # raised once (at the first packet, after the encoder's look-ahead)
    assert re.search(r"bad\.mp4: could not write frame \d+", errors[0])
    assert _decode(tmp_path / "good.mp4")[0] == 24


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fps": 0.0}, "fps"),
        ({"crf": 52}, "crf"),
        ({"preset": "fastest"}, "preset"),
        ({"codec": "aac"}, "video encoder"),
        ({"codec": "nope"}, "nope"),
    ],
    ids=["fps", "crf", "preset", "audio_codec", "unknown_codec"],
)
def test_video_rejects_bad_settings(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        AnnotatedVideoSink(tmp_path, **kwargs)  # type: ignore[arg-type]


# --- CropSink ---------------------------------------------------------------------------------------


def test_crops_sample_every_n_with_sidecars(tmp_path: Path, bikes: list[tuple[np.ndarray, float]]) -> None:
    sink = CropSink(tmp_path / "pool", every_n=4, min_score=0.5, max_per_frame=1)
    for index in range(10):
        _write(sink, _frame(bikes[index][0], index, bikes[index][1]))
    sink.close()

    camera_dir = tmp_path / "pool" / "cam1"
    assert sorted(p.name for p in camera_dir.iterdir()) == [
        f"{i:09d}{suffix}" for i in (0, 4, 8) for suffix in (".jpg", ".json", "_0.jpg")
    ]
    result = FrameResult.model_validate_json((camera_dir / "000000004.json").read_text())
    assert result.frame_index == 4
    assert len(result.detections) == 3  # the sidecar keeps every model output, not only the crops
    frame = cv2.imread(str(camera_dir / "000000004.jpg"))
    assert frame.shape == (HEIGHT, WIDTH, 3)
    crop = cv2.imread(str(camera_dir / "000000004_0.jpg"))
    assert crop.shape == (120, 60, 3)  # box 50 x 100 at (14, 20), plus 10% of its size on each side


def test_crops_count_frames_per_camera(tmp_path: Path, bikes: list[tuple[np.ndarray, float]]) -> None:
    sink = CropSink(tmp_path, every_n=2, should_save_crops=False)
    for index in range(6):
        _write(sink, _frame(bikes[index][0], index, camera_id=("a", "b")[index % 2]))
    sink.close()
    # Each camera saw 3 frames and sampled its 1st and 3rd.
    assert sorted(p.name for p in (tmp_path / "a").glob("*.json")) == ["000000000.json", "000000004.json"]
    assert sorted(p.name for p in (tmp_path / "b").glob("*.json")) == ["000000001.json", "000000005.json"]


def test_crops_keep_the_newest_samples(tmp_path: Path, bikes: list[tuple[np.ndarray, float]]) -> None:
    sink = CropSink(tmp_path, every_n=1, max_samples_per_camera=3, max_per_frame=2, min_score=0.0)
    for index in range(8):
        _write(sink, _frame(bikes[index][0], index))
    sink.close()
    camera_dir = tmp_path / "cam1"
    assert sorted(p.stem for p in camera_dir.glob("*.json")) == ["000000005", "000000006", "000000007"]
    assert len(list(camera_dir.iterdir())) == 3 * (2 + 2)  # frame, sidecar and 2 crops each

    # A later run counts what the earlier one left toward the bound, and evicts the oldest first;
    # files it did not write (a selection step's manifest) are left alone.
    (camera_dir / "manifest.json").write_text("{}")
    again = CropSink(tmp_path, every_n=1, max_samples_per_camera=3, should_save_crops=False)
    _write(again, _frame(bikes[8][0], 8))
    again.close()
    assert sorted(p.stem for p in camera_dir.glob("0*.json")) == ["000000006", "000000007", "000000008"]
    assert not list(camera_dir.glob("000000005*"))
    assert (camera_dir / "manifest.json").exists()


def test_crops_skip_bad_frames_and_leave_no_temporary_files(
    tmp_path: Path, bikes: list[tuple[np.ndarray, float]]
) -> None:
    sink = CropSink(tmp_path, every_n=1)
    _write(sink, _frame(np.zeros((4, 4, 4), np.uint8), 0))
    _write(sink, _frame(bikes[1][0], 1), dets([[700, 300, 800, 400]]))  # box outside: no crop
    sink.close()
    assert sink.frames_skipped == {"cam1": 1}
    assert sorted(p.name for p in (tmp_path / "cam1").iterdir()) == ["000000001.jpg", "000000001.json"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"every_n": 0}, "every_n"),
        ({"min_score": 1.5}, "min_score"),
        ({"max_per_frame": -1}, "max_per_frame"),
        ({"max_samples_per_camera": 0}, "max_samples_per_camera"),
        ({"jpeg_quality": 0}, "jpeg_quality"),
    ],
    ids=["every_n", "min_score", "max_per_frame", "max_samples", "jpeg_quality"],
)
def test_crops_reject_bad_settings(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        CropSink(tmp_path, **kwargs)  # type: ignore[arg-type]


# --- every sink -------------------------------------------------------------------------------------

SINKS: list[tuple[str, Callable[[Path], Sink]]] = [
    ("jsonl", lambda folder: JsonlSink(folder / "r.jsonl")),
    ("mot", MotSink),
    ("video", AnnotatedVideoSink),
    ("crops", CropSink),
]


@pytest.mark.parametrize("make", [make for _, make in SINKS], ids=[name for name, _ in SINKS])
def test_close_twice_is_fine_and_write_after_close_fails(
    tmp_path: Path, bikes: list[tuple[np.ndarray, float]], make: Callable[[Path], Sink]
) -> None:
    sink = make(tmp_path / "out")
    _write(sink, _frame(bikes[0][0], 0, 0.0))
    sink.close()
    sink.close()
    with pytest.raises(CvopsError, match="after close"):
        _write(sink, _frame(bikes[1][0], 1, 0.04))


@pytest.mark.parametrize("make", [make for _, make in SINKS], ids=[name for name, _ in SINKS])
def test_close_without_frames_is_fine(tmp_path: Path, make: Callable[[Path], Sink]) -> None:
    sink = make(tmp_path / "out")
    sink.close()
    assert (tmp_path / "out").is_dir()


@pytest.mark.parametrize(
    ("camera_id", "expected"),
    [
        ("cam1", "cam1"),
        ("front-door_2.main", "front-door_2.main"),
        ("rtsp://10.0.0.5/live", None),
        ("a/b", None),
        ("..", None),
        ("cam1\n", None),
    ],
    ids=["plain", "punctuation", "url", "slash", "dots", "newline"],
)
def test_camera_file_stem(camera_id: str, expected: str | None) -> None:
    stem = camera_file_stem(camera_id)
    if expected is not None:
        assert stem == expected
    else:
        assert "/" not in stem
        assert ":" not in stem
        assert not stem.startswith(".")
        assert "\n" not in stem
    assert camera_file_stem("a/b") != camera_file_stem("a_b")


def test_sidecar_is_plain_json(tmp_path: Path, bikes: list[tuple[np.ndarray, float]]) -> None:
    sink = CropSink(tmp_path, every_n=1, should_save_frames=False, should_save_crops=False)
    _write(sink, _frame(bikes[0][0], 0, 0.0))
    sink.close()
    assert json.loads((tmp_path / "cam1" / "000000000.json").read_text())["stream_id"] == "cam1"
