"""The video pipeline with real sources, the real YOLOX-nano detector, ByteTrack and real sinks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from cvops.cli.app import main
from cvops.config import DetectorSettings
from cvops.contracts.wire import FrameResult
from cvops.detection.detector import Detector
from cvops.detection.loader import load_detector
from cvops.detection.types import Detections
from cvops.processes import die_with_parent
from cvops.tracking.image_tracker import ImageTracker
from cvops.tracking.mot_files import read_mot_file
from cvops.video.metrics import VideoMetrics
from cvops.video.pipeline import PipelineSettings, VideoPipeline
from cvops.video.queues import QueuePolicy
from cvops.video.sinks import JsonlSink, MotSink
from cvops.video.sources import open_source
from tests.conftest import REPO_ROOT, fixture_path

pytestmark = pytest.mark.integration


class SlowDetector:
    """The real detector plus a fixed delay per call: overload on demand, whatever the machine."""

    def __init__(self, detector: Detector, delay_s: float) -> None:
        self._detector = detector
        self._delay_s = delay_s

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._detector.class_names

    def detect(
        self, images: Sequence[np.ndarray], settings: DetectorSettings | None = None
    ) -> list[Detections]:
        time.sleep(self._delay_s)
        return self._detector.detect(images, settings)


@pytest.fixture(scope="module")
def detector(yolox_package: Path) -> Detector:
    return load_detector(yolox_package, DetectorSettings(num_threads=2))


@pytest.fixture
def folder_with_corrupt_jpeg(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    images = sorted(fixture_path("mot17-mini/train/MOT17-09-FRCNN/img1").glob("*.jpg"))
    for path in images:
        shutil.copy(path, folder / path.name)
    (folder / "000002.jpg").write_bytes((folder / "000002.jpg").read_bytes()[:2000])  # truncated
    return folder


def test_block_mode_processes_every_frame_once_and_counts_the_corrupt_one(
    detector: Detector, folder_with_corrupt_jpeg: Path, tmp_path: Path
) -> None:
    video = fixture_path("video/bikes.mp4")
    sources = [open_source(str(video), "bikes"), open_source(str(folder_with_corrupt_jpeg), "folder")]
    out = tmp_path / "out"
    registry = CollectorRegistry()
    pipeline = VideoPipeline(
        sources, detector, [JsonlSink(out / "results.jsonl"), MotSink(out / "mot")],
        PipelineSettings(policy=QueuePolicy.BLOCK, queue_size=4), ImageTracker, VideoMetrics(registry),
    )  # fmt: skip
    summary = pipeline.run()
    cameras = {c.camera_id: c for c in summary.cameras}
    assert cameras["bikes"].frames_read == cameras["bikes"].frames_processed == 250
    assert cameras["folder"].frames_processed == 3
    assert cameras["folder"].frames_corrupt == 1
    assert all(not c.dropped and c.error is None for c in summary.cameras)
    lines = (out / "results.jsonl").read_text().splitlines()
    results = [FrameResult.model_validate_json(line) for line in lines]
    assert len(results) == 253
    bikes = [r.frame_index for r in results if r.stream_id == "bikes"]
    assert bikes == list(range(250)), "each camera's frames in order, none twice"
    assert read_mot_file(out / "mot" / "bikes.txt").frame.max() <= 250
    exported = generate_latest(registry).decode()
    assert 'cvops_video_frames_processed_total{camera="bikes"} 250.0' in exported
    assert 'cvops_video_frames_corrupt_total{camera="folder"} 1.0' in exported


def test_overload_with_drop_oldest_accounts_for_every_frame_and_keeps_latency_bounded(
    detector: Detector,
) -> None:
    video = str(fixture_path("video/bikes.mp4"))
    sources = [open_source(video, f"cam{i}", realtime=True) for i in range(3)]
    slow = SlowDetector(detector, delay_s=0.05)  # at most 20 calls a second for 75 frames a second
    settings = PipelineSettings(policy=QueuePolicy.DROP_OLDEST, queue_size=1, max_batch_size=1)
    summary = VideoPipeline(sources, slow, [], settings, ImageTracker).run()
    for camera in summary.cameras:
        dropped = camera.dropped.get("queue_full_oldest", 0)
        assert dropped > 50, "overload drops frames and says why"
        # Every frame read was processed or dropped with a reason: nothing vanished.
        assert camera.frames_processed + sum(camera.dropped.values()) == camera.frames_read == 250
        assert camera.latency_ms_p99 is not None
        assert camera.latency_ms_p99 < 400, "the freshest frame wins: latency stays near one round"


def test_one_bad_camera_does_not_stop_the_others(detector: Detector, tmp_path: Path) -> None:
    video = str(fixture_path("video/bikes.mp4"))
    sources = [open_source(video, "good"), open_source(str(tmp_path / "missing.mp4"), "bad")]
    summary = VideoPipeline(sources, detector, [], PipelineSettings(policy=QueuePolicy.BLOCK)).run()
    cameras = {c.camera_id: c for c in summary.cameras}
    assert cameras["good"].frames_processed == 250
    assert cameras["bad"].error is not None
    assert "missing.mp4" in cameras["bad"].error
    assert "\n" not in cameras["bad"].error


def test_stream_cli_stops_cleanly_on_ctrl_c_and_flushes_its_sinks(
    yolox_package: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "cvops", "stream", "--source", str(fixture_path("video/bikes.mp4")),
        "--model", str(yolox_package), "--realtime", "--out", str(out), "--threads", "2",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"}, preexec_fn=die_with_parent,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (out / "results.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # mid-video: bikes.mp4 lasts 10 s at its frame rate
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err.decode()[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    processed = summary["cameras"][0]["frames_processed"]
    assert 10 < processed < 250, "stopped early"
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == processed, "every processed frame was flushed"
    assert all(FrameResult.model_validate_json(line) for line in lines)


def test_stream_cli_with_a_remote_kserve_endpoint(yolox_package: Path, tmp_path: Path) -> None:
    from tests.integration.test_serving import start_server

    server, served = start_server(yolox_package, "--allow-anonymous")
    out = tmp_path / "out"
    try:
        code = main(
            ["stream", "--source", str(fixture_path("video/bikes.mp4")), "--endpoint", served.url,
             "--every-n", "10", "--policy", "block", "--out", str(out)]
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cameras"][0]["frames_processed"] == 25
    results = [FrameResult.model_validate_json(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(results) == 25
    assert sum(len(r.detections) for r in results) > 0
