"""One real Label Studio server per test session, on a free loopback port in a temporary folder.

Import ``labelstudio_fixture`` and ``ground_truth_fixture`` into a test module; tests then ask for
``labelstudio`` and ``ground_truth``.
Tests are skipped, with the reason, when ``make labelstudio`` has not created its venv.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cvops.annotation.connection import LabelStudioConnection
from cvops.annotation.push import Frame
from cvops.annotation.server import ServerInfo, read_server_info, start_server, stop_server, write_server_info
from cvops.data.formats import DetectionDataset, read_yolo
from cvops.data.synthetic import generate_scenes
from cvops.detection.types import Detections
from tests.conftest import REPO_ROOT

LABELSTUDIO_VENV = REPO_ROOT / ".venv-labelstudio"
LOCK_FILE = REPO_ROOT / "requirements" / "labelstudio.lock.txt"
# A migrated, empty server (database and admin), made once per lock file: a first start migrates
# the database (~20 s idle, minutes on a busy 2-core machine); a copy of it starts in seconds.
TEMPLATE_ROOT = REPO_ROOT / ".cache" / "labelstudio-template"


@dataclass(frozen=True)
class RunningServer:
    """The session's server: its folder and how long its first start took."""

    base_dir: Path
    first_start_s: float

    @property
    def info(self) -> ServerInfo:
        info = read_server_info(self.base_dir)
        assert info is not None
        return info

    @property
    def connection(self) -> LabelStudioConnection:
        return LabelStudioConnection.from_server(self.info)


@pytest.fixture(scope="session", name="labelstudio")
def labelstudio_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Start Label Studio once, from a copy of the migrated template; stop it by PID after."""
    if not (LABELSTUDIO_VENV / "bin" / "label-studio").is_file():
        pytest.skip(f"{LABELSTUDIO_VENV} missing: run `make labelstudio` to install the Label Studio server")
    base_dir = tmp_path_factory.mktemp("labelstudio")
    started = time.monotonic()
    _copy_template(_template(), base_dir)
    start_server(LABELSTUDIO_VENV, base_dir, timeout_s=240.0)
    server = RunningServer(base_dir, time.monotonic() - started)
    try:
        yield server
    finally:
        stop_server(base_dir)


def _template() -> Path:
    """Return the template server folder of this lock file, made (started once, stopped) if missing."""
    folder = TEMPLATE_ROOT / hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()[:12]
    if not (folder / "complete").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        try:
            start_server(LABELSTUDIO_VENV, folder, timeout_s=400.0)
        finally:
            stop_server(folder)
        (folder / "complete").touch()
    return folder


def _copy_template(template: Path, base_dir: Path) -> None:
    shutil.copytree(template / "data", base_dir / "data")
    info = read_server_info(template)
    assert info is not None
    root = base_dir / "files"
    root.mkdir()
    write_server_info(
        info.model_copy(update={"base_dir": str(base_dir), "document_root": str(root), "pid": None})
    )


@pytest.fixture(scope="session", name="ground_truth")
def ground_truth_fixture(tmp_path_factory: pytest.TempPathFactory) -> DetectionDataset:
    """Twelve synthetic 160x160 images with 1 to 4 shapes each, all in the train split."""
    scenes = generate_scenes(tmp_path_factory.mktemp("gt"), 12, 1, 160, seed=3)
    return read_yolo(scenes.data_yaml).select_split("train")


def model_frames(dataset: DetectionDataset, shift_px: float = 3.0) -> list[Frame]:
    """Pretend model output: every true box shifted by ``shift_px`` (what annotators correct)."""
    frames: list[Frame] = []
    for item in dataset.items:
        n = len(item)
        boxes = np.clip(item.xyxy + shift_px, 0, [item.width, item.height, item.width, item.height])
        names = tuple(dataset.class_names[i] for i in item.class_ids.tolist())
        scores = np.linspace(0.5, 0.9, n, dtype=np.float32)
        frames.append(
            (item.image_path, Detections(boxes.astype(np.float32), scores, item.class_ids.copy(), names))
        )
    return frames
