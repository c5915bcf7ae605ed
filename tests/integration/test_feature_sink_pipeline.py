"""FeatureSink in the real video pipeline (real 1080p MOT17 frames, YOLOX-nano); `cvops stream --features`."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pyarrow.parquet as pq
import pytest

from cvops.cli.app import main
from cvops.config import DetectorSettings
from cvops.contracts.wire import FrameResult
from cvops.detection.loader import load_detector
from cvops.features.image_stats import image_stats
from cvops.features.offline_store import CAMERA_WINDOW_TABLE, FRAME_TABLE
from cvops.features.store import offline_dir, stage_feature_repo
from cvops.video.feature_sink import FeatureSink
from cvops.video.pipeline import PipelineSettings, VideoPipeline
from cvops.video.queues import QueuePolicy
from cvops.video.sinks import JsonlSink
from cvops.video.sources import open_source
from tests.conftest import REPO_ROOT, fixture_path

pytestmark = pytest.mark.integration

FRAMES = "mot17-mini/train/MOT17-09-FRCNN/img1"  # 4 frames, 1920x1080


def _rows(folder: Path) -> list[dict[str, object]]:
    return [row for path in sorted(folder.glob("*.parquet")) for row in pq.read_table(path).to_pylist()]


def test_pipeline_writes_one_feature_row_per_processed_frame(yolox_package: Path, tmp_path: Path) -> None:
    folder = fixture_path(FRAMES)
    detector = load_detector(yolox_package, DetectorSettings(num_threads=2))
    offline = tmp_path / "offline"
    pipeline = VideoPipeline(
        [open_source(str(folder), "mot09")],
        detector,
        [JsonlSink(tmp_path / "results.jsonl"), FeatureSink(offline)],
        PipelineSettings(policy=QueuePolicy.BLOCK, queue_size=4, warmup_hw=None),
    )

    summary = pipeline.run()

    results = {
        r.frame_index: r
        for r in map(FrameResult.model_validate_json, (tmp_path / "results.jsonl").read_text().splitlines())
    }
    rows = {r["frame_index"]: r for r in _rows(offline / FRAME_TABLE)}
    assert summary.frames_processed == len(rows) == 4
    assert set(rows) == set(results)
    images = sorted(folder.glob("*.jpg"))
    for index, row in rows.items():
        assert row["camera_id"] == "mot09"
        assert row["detection_count"] == len(results[index].detections)
        assert row["detection_count"] > 0, "people are in every MOT17-09 frame"
        assert row["score_min"] == pytest.approx(min(d.score for d in results[index].detections), abs=1e-6)
        assert (row["image_width_px"], row["image_height_px"]) == (1920, 1080)
        stats = image_stats(cv2.imread(str(images[index])))
        assert row["brightness_gray"] == pytest.approx(stats.brightness, rel=1e-5)
        assert row["blur_laplacian_var"] == pytest.approx(stats.blur_laplacian_var, rel=1e-4)
    (window,) = _rows(offline / CAMERA_WINDOW_TABLE)
    assert window["frame_count_1m"] == 4
    assert window["detection_count_mean_1m"] == pytest.approx(
        sum(len(r.detections) for r in results.values()) / 4
    )


def test_stream_cli_with_features_writes_the_repo_offline_store(yolox_package: Path, tmp_path: Path) -> None:
    repo = stage_feature_repo(REPO_ROOT / "feature_repo", tmp_path / "repo")
    frames = tmp_path / "frames"
    shutil.copytree(fixture_path(FRAMES), frames)

    code = main(
        ["stream", "--source", str(frames), "--model", str(yolox_package), "--policy", "block",
         "--queue-size", "4", "--threads", "2", "--features", str(repo)]
    )  # fmt: skip

    assert code == 0
    assert len(_rows(offline_dir(repo) / FRAME_TABLE)) == 4
    assert len(_rows(offline_dir(repo) / CAMERA_WINDOW_TABLE)) == 1


def test_stream_cli_refuses_features_dir_that_is_not_a_repo(
    yolox_package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["stream", "--source", str(fixture_path(FRAMES)), "--model", str(yolox_package),
         "--features", str(tmp_path / "nothing")]
    )  # fmt: skip

    err = capsys.readouterr().err
    assert code == 2
    assert "--features: expected a feature repository" in err
    assert "Traceback" not in err
