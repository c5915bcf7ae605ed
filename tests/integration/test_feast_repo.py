"""The Feast repository for real: `feast apply` (the CLI), materialize to sqlite and to a real
redis-server, online and point-in-time historical reads, and the `cvops features` commands.

One repository is staged in a tmp folder and applied once for the module (Feast is slow to import).
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cvops.cli.app import main
from cvops.detection.types import Detections
from cvops.errors import InvalidInputError
from cvops.features.camera_window import CameraWindowFeatures
from cvops.features.frame_features import FrameFeatures, frame_features
from cvops.features.offline_store import write_camera_window_features, write_frame_features
from cvops.features.store import (
    historical_frame_features,
    list_feature_views,
    materialize_features,
    offline_dir,
    online_frame_features,
    stage_feature_repo,
)
from cvops.processes import die_with_parent, free_port
from tests.conftest import REPO_ROOT, dets

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
FEAST = Path(sys.executable).parent / "feast"


def _frame(index: int, second: float, level: int, camera_id: str = "cam0", n_boxes: int = 0) -> FrameFeatures:
    boxes = dets([[0, 0, 2, 2]] * n_boxes, scores=[0.5] * n_boxes) if n_boxes else Detections.empty()
    image = np.full((6, 8, 3), level, np.uint8)
    return frame_features(
        image, boxes, camera_id, T0 + timedelta(seconds=second), frame_index=index, pts_s=index / 25
    )


def _window(second: float, frames: int, brightness: float) -> CameraWindowFeatures:
    return CameraWindowFeatures("cam0", T0 + timedelta(seconds=second), frames, 1.5, brightness, 10.0, 25.0)


@pytest.fixture(scope="module")
def applied_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A staged copy of feature_repo/ with known rows, applied with the real `feast` CLI."""
    repo = stage_feature_repo(REPO_ROOT / "feature_repo", tmp_path_factory.mktemp("feast") / "repo")
    offline = offline_dir(repo)
    write_frame_features([_frame(i, i, level=10 * i, n_boxes=i % 3) for i in range(10)], offline)
    # Frame 5 again, recomputed later (the selection step re-scoring it): a second, newer value.
    write_frame_features([_frame(5, 100, level=250)], offline)
    write_camera_window_features([_window(60, 10, 100.0), _window(120, 20, 200.0)], offline)
    done = subprocess.run(
        [str(FEAST), "--chdir", str(repo), "apply"], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return repo


@pytest.fixture(scope="module")
def materialized_repo(applied_repo: Path) -> Path:
    """The applied repository, materialized to its sqlite online store by `cvops features materialize`."""
    code = main(
        [
            "features", "materialize", "--repo", str(applied_repo),
            "--since", (T0 - timedelta(hours=1)).isoformat(),
            "--until", (T0 + timedelta(hours=1)).isoformat(),
        ]
    )  # fmt: skip
    assert code == 0
    return applied_repo


def test_feast_apply_registers_the_declared_views(applied_repo: Path) -> None:
    views = dict(list_feature_views(applied_repo))

    assert sorted(views) == ["camera_window_features", "frame_features"]
    assert "score_entropy_bits" in views["frame_features"]
    assert "blur_laplacian_var" in views["frame_features"]
    assert views["camera_window_features"] == [
        "frame_count_1m",
        "detection_count_mean_1m",
        "brightness_gray_mean_1m",
        "blur_laplacian_var_mean_1m",
        "fps_1m",
    ]
    assert (applied_repo / "data" / "registry.db").is_file()  # relative paths resolved in the copy


def test_online_store_serves_the_latest_values(materialized_repo: Path) -> None:
    frame = online_frame_features(materialized_repo, "cam0", 3)
    assert frame["brightness_gray"] == pytest.approx(30.0)
    assert frame["detection_count"] == 0
    assert frame["score_mean"] is None  # no detections: undefined, stored as null
    assert frame["frame_count_1m"] == 20  # the camera's newest window
    assert frame["pts_s"] == pytest.approx(3 / 25)

    recomputed = online_frame_features(materialized_repo, "cam0", 5)
    assert recomputed["brightness_gray"] == pytest.approx(250.0)  # the newer of frame 5's values

    camera = online_frame_features(materialized_repo, "cam0")
    assert camera["brightness_gray_mean_1m"] == pytest.approx(200.0)
    assert "brightness_gray" not in camera
    assert (materialized_repo / "data" / "online.db").is_file()


def test_historical_join_is_point_in_time_correct(applied_repo: Path) -> None:
    entity_rows = pd.DataFrame(
        {
            "camera_id": ["cam0", "cam0", "cam0", "cam0", "cam0"],
            "frame_index": [5, 5, 4, 4, 99],
            "event_timestamp": [T0 + timedelta(seconds=s) for s in (50, 200, 90, 30, 200)],
            "row": [0, 1, 2, 3, 4],
        }
    )

    joined = historical_frame_features(applied_repo, entity_rows).sort_values("row").set_index("row")

    # Frame 5 was re-scored at 100 s: a row at 50 s must see only the value known then.
    assert joined.loc[0, "brightness_gray"] == pytest.approx(50.0)
    assert joined.loc[1, "brightness_gray"] == pytest.approx(250.0)
    # The camera windows closed at 60 s and 120 s: 90 s sees the first; 30 s sees none yet.
    assert joined.loc[2, "frame_count_1m"] == 10
    assert joined.loc[2, "brightness_gray_mean_1m"] == pytest.approx(100.0)
    assert math.isnan(joined.loc[3, "frame_count_1m"])
    assert joined.loc[3, "detection_count"] == 1  # frame 4 itself was known at 4 s
    assert joined.loc[4, "frame_count_1m"] == 20
    assert math.isnan(joined.loc[4, "brightness_gray"])  # frame 99 was never written


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (pd.DataFrame({"camera_id": ["cam0"], "event_timestamp": [T0]}), "missing frame_index"),
        (
            pd.DataFrame(
                {"camera_id": ["cam0"], "frame_index": [1], "event_timestamp": [datetime(2026, 1, 1)]}
            ),
            "timezone-aware",
        ),
    ],
    ids=["no-frame-index", "naive-times"],
)
def test_historical_rows_are_checked_before_feast_runs(
    applied_repo: Path, rows: pd.DataFrame, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        historical_frame_features(applied_repo, rows)


def test_cvops_features_show_prints_a_frame(
    materialized_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["features", "show", "--repo", str(materialized_repo), "--camera", "cam0", "--frame", "2"])

    out = capsys.readouterr().out
    assert code == 0
    assert "brightness_gray" in out
    assert "20.0" in out  # frame 2's brightness
    assert "frame_count_1m" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["features", "show", "--camera", "cam0"], "feature_store.yaml"),
        (["features", "materialize", "--until", "yesterday"], "ISO time"),
        (["features", "apply", "--redis", "localhost"], "host:port"),
    ],
    ids=["show-no-repo", "bad-time", "bad-redis"],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*argv[:2], "--repo", str(tmp_path / "missing"), *argv[2:]])

    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    """A real redis-server on 127.0.0.1 and a free port, without persistence; stopped by PID."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(10)


def test_cvops_features_apply_with_redis_then_materialize_and_read(
    redis_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import redis

    repo = tmp_path / "redis_repo"
    code = main(
        ["features", "apply", "--repo", str(repo), "--declarations", str(REPO_ROOT / "feature_repo"),
         "--redis", f"127.0.0.1:{redis_port}"]
    )  # fmt: skip
    assert code == 0
    assert "frame_features" in capsys.readouterr().out
    write_frame_features([_frame(i, i, level=10 * i) for i in range(4)], offline_dir(repo))
    write_camera_window_features([_window(60, 10, 100.0)], offline_dir(repo))

    materialize_features(repo, T0 + timedelta(hours=1), T0 - timedelta(hours=1))

    frame = online_frame_features(repo, "cam0", 3)
    assert frame["brightness_gray"] == pytest.approx(30.0)
    assert frame["frame_count_1m"] == 10
    assert redis.Redis(host="127.0.0.1", port=redis_port).dbsize() == 5  # 4 frames + 1 camera
    assert not (repo / "data" / "online.db").exists()
