"""Camera window aggregates, the parquet offline store, and the import rule of the feature modules."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cvops.detection.types import Detections
from cvops.errors import CvopsError, FeatureStoreError, InvalidInputError
from cvops.features.camera_window import CameraWindow, CameraWindowFeatures
from cvops.features.frame_features import FrameFeatures, frame_features
from cvops.features.offline_store import (
    CAMERA_WINDOW_TABLE,
    FRAME_TABLE,
    write_camera_window_features,
    write_frame_features,
)
from cvops.features.store import RedisOnlineStore, stage_feature_repo
from tests.conftest import REPO_ROOT, dets

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _frame(second: float, camera_id: str = "cam0", n_boxes: int = 0, level: int = 100) -> FrameFeatures:
    boxes = dets([[0, 0, 2, 2]] * n_boxes, scores=[0.5] * n_boxes) if n_boxes else Detections.empty()
    image = np.full((4, 4, 3), level, np.uint8)
    return frame_features(image, boxes, camera_id, T0 + timedelta(seconds=second), frame_index=int(second))


def test_window_closes_at_60_s_and_is_stamped_at_its_end() -> None:
    window = CameraWindow("cam0")
    frames = [_frame(0, n_boxes=2, level=100), _frame(30, n_boxes=0, level=50), _frame(59, n_boxes=1)]

    assert [window.add(f) for f in frames] == [None, None, None]
    closed = window.add(_frame(60, n_boxes=4))

    assert closed == CameraWindowFeatures(
        camera_id="cam0",
        event_timestamp=T0 + timedelta(seconds=60),
        frame_count_1m=3,
        detection_count_mean_1m=1.0,
        brightness_gray_mean_1m=pytest.approx(250 / 3),  # type: ignore[arg-type]
        blur_laplacian_var_mean_1m=0.0,
        fps_1m=pytest.approx(2 / 59),  # type: ignore[arg-type]
    )
    flushed = window.flush()
    assert flushed is not None
    assert (flushed.frame_count_1m, flushed.detection_count_mean_1m, flushed.fps_1m) == (1, 4.0, 0.0)
    assert flushed.event_timestamp == T0 + timedelta(seconds=60)  # early close: the last frame
    assert window.flush() is None


def test_window_skips_empty_minutes_and_keeps_its_grid() -> None:
    window = CameraWindow("cam0")
    window.add(_frame(10))
    closed = window.add(_frame(200))  # minutes 1 and 2 had no frames
    assert closed is not None
    assert closed.event_timestamp == T0 + timedelta(seconds=70)
    later = window.add(_frame(249))  # still in the window [190 s, 250 s)
    assert later is None
    after = window.add(_frame(311))
    assert after is not None
    assert (after.event_timestamp, after.frame_count_1m) == (T0 + timedelta(seconds=250), 2)


def test_window_refuses_another_camera() -> None:
    with pytest.raises(InvalidInputError, match="cam1"):
        CameraWindow("cam0").add(_frame(0, camera_id="cam1"))


def test_frame_rows_round_trip_through_parquet_with_nulls_for_undefined(tmp_path: Path) -> None:
    rows = [_frame(0, n_boxes=2), _frame(1, camera_id="cam1")]

    path = write_frame_features(rows, tmp_path)

    assert path is not None
    assert path.parent == tmp_path / FRAME_TABLE
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    table = pq.read_table(path)
    assert table.schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("frame_index").type == pa.int64()
    assert table.schema.field("pts_s").type == pa.float64()
    assert table.schema.field("score_mean").type == pa.float32()
    assert table.column("camera_id").to_pylist() == ["cam0", "cam1"]
    assert table.column("detection_count").to_pylist() == [2, 0]
    assert table.column("score_mean").to_pylist() == [0.5, None]
    assert table.column("pts_s").to_pylist() == [None, None]
    assert table.column("event_timestamp").to_pylist()[1] == T0 + timedelta(seconds=1)
    assert table.column("created_timestamp").null_count == 0


def test_window_rows_go_to_their_own_table(tmp_path: Path) -> None:
    window = CameraWindow("cam0")
    window.add(_frame(0))
    row = window.flush()
    assert row is not None

    path = write_camera_window_features([row], tmp_path)

    assert path is not None
    assert path.parent == tmp_path / CAMERA_WINDOW_TABLE
    assert pq.read_table(path).column("frame_count_1m").to_pylist() == [1]


def test_empty_rows_write_nothing_and_wrong_rows_are_refused(tmp_path: Path) -> None:
    assert write_frame_features([], tmp_path) is None
    assert not (tmp_path / FRAME_TABLE).exists()
    with pytest.raises(InvalidInputError, match="FrameFeatures"):
        write_frame_features([{"camera_id": "cam0"}], tmp_path)  # type: ignore[list-item]


def test_unwritable_offline_folder_is_a_cvops_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CvopsError, match=r"frame_features/.*\.parquet: could not write"):
        write_frame_features([_frame(0)], blocker)


def test_stage_copies_declarations_and_writes_a_redis_config(tmp_path: Path) -> None:
    import yaml

    repo = stage_feature_repo(
        REPO_ROOT / "feature_repo", tmp_path / "repo", RedisOnlineStore("127.0.0.1:6390")
    )

    assert sorted(p.name for p in repo.iterdir()) == sorted(
        [".feastignore", "entities.py", "feature_store.yaml", "services.py", "sources.py", "views.py"]
    )
    config = yaml.safe_load((repo / "feature_store.yaml").read_text())
    assert config["online_store"] == {"type": "redis", "connection_string": "127.0.0.1:6390"}
    assert config["registry"] == "data/registry.db"  # relative: resolved against the staged folder


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda tmp: stage_feature_repo(tmp, tmp / "repo"), FeatureStoreError, "entities.py"),
        (lambda tmp: RedisOnlineStore("localhost"), InvalidInputError, "host:port"),
    ],
    ids=["no-declarations", "redis-without-port"],
)
def test_staging_bad_input_is_a_clear_error(
    call: object, error: type[Exception], message: str, tmp_path: Path
) -> None:
    with pytest.raises(error, match=message):
        call(tmp_path)  # type: ignore[operator]


def test_feature_modules_do_not_import_feast_or_dask() -> None:
    modules = [
        "cvops.features.frame_features",
        "cvops.features.camera_window",
        "cvops.features.offline_store",
        "cvops.features.store",
        "cvops.video.feature_sink",
        "cvops.cli.features",
        "cvops.cli.stream",
    ]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert loaded.isdisjoint({"feast", "dask", "pandas", "pyarrow"}), loaded & {
        "feast",
        "dask",
        "pandas",
        "pyarrow",
    }
