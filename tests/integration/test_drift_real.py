"""Drift checks on real frames with the real YOLOX-nano: what must drift does, what must not does not.

Scenarios: the fixture street video ``bikes.mp4`` (every 5th frame; even vs odd frames as the
same-distribution split; brightness, blur and noise perturbations of the odd frames as drift),
and the MOT17-mini sequences (another scene drifts; even vs odd frames of one sequence do not).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cvops.detection.detector import Detector
from cvops.detection.loader import load_detector
from cvops.images import list_images
from cvops.monitoring.drift import detect_drift
from cvops.monitoring.perturb import Perturbation, perturb_frames, write_video_frames
from cvops.monitoring.tables import build_feature_tables, write_feature_tables
from tests.conftest import fixture_path

pytestmark = pytest.mark.integration

VIDEO_STRIDE = 5  # 250 frames -> 50: 25 reference, 25 current


def write_list(path: Path, frames: list[Path]) -> Path:
    """Write a ``.txt`` window: one frame path per line."""
    path.write_text("".join(f"{frame}\n" for frame in frames), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def detector(yolox_package: Path) -> Detector:
    return load_detector(yolox_package)


@pytest.fixture(scope="module")
def bikes_frames(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Every 5th frame of the fixture street video, as lossless PNG files."""
    frames = write_video_frames(
        fixture_path("video/bikes.mp4"), tmp_path_factory.mktemp("bikes"), VIDEO_STRIDE
    )
    assert len(frames) == 50
    return frames


@pytest.fixture(scope="module")
def bikes_reference(
    bikes_frames: list[Path], detector: Detector, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The even frames' feature tables, computed once (a FEATURES reference)."""
    folder = tmp_path_factory.mktemp("bikes_reference")
    write_feature_tables(build_feature_tables(bikes_frames[0::2], detector), folder)
    return folder


def test_bikes_same_distribution_split_does_not_drift(
    bikes_reference: Path, bikes_frames: list[Path], detector: Detector, tmp_path: Path
) -> None:
    current = write_list(tmp_path / "odd.txt", bikes_frames[1::2])
    result = detect_drift(bikes_reference, current, tmp_path / "out", detector=detector)
    assert not result.is_drifted, result.to_dict()
    assert result.drift_share <= 0.1
    assert len(result.features) == 10  # 4 frame + 5 box features + the embedding
    assert result.candidates_path is None
    assert (result.reference_frames, result.current_frames) == (25, 25)
    assert result.reference_boxes is not None
    assert result.reference_boxes > 50
    for html in result.html_paths:
        text = html.read_text(encoding="utf-8")
        assert "<html" in text
        assert 'src="http' not in text
    assert (tmp_path / "out" / "current_features" / "frames.parquet").is_file()


@pytest.mark.parametrize(
    ("kind", "strength", "expected"),
    [
        ("brightness", 50.0, {"brightness_gray", "image_embedding"}),
        ("blur", 2.0, {"blur_laplacian_var", "contrast_gray"}),
        ("noise", 12.0, {"blur_laplacian_var", "image_embedding"}),
    ],
    ids=["brightness+50", "blur-sigma2", "noise-sigma12"],
)
def test_bikes_perturbed_window_drifts(
    bikes_reference: Path,
    bikes_frames: list[Path],
    detector: Detector,
    tmp_path: Path,
    kind: Perturbation,
    strength: float,
    expected: set[str],
) -> None:
    perturbed = perturb_frames(bikes_frames[1::2], tmp_path / kind, kind, strength)
    result = detect_drift(
        bikes_reference, tmp_path / kind, tmp_path / "out", detector=detector, current_label=kind
    )
    assert result.is_drifted, result.to_dict()
    assert expected <= set(result.drifted_features)
    assert result.drift_share >= 0.2
    assert result.candidates_path is not None
    listed = result.candidates_path.read_text().splitlines()
    assert sorted(listed) == sorted(str(p.resolve()) for p in perturbed)
    assert len(list_images([tmp_path / "out" / "candidates"])) == len(perturbed)
    prom = (tmp_path / "out" / "drift.prom").read_text()
    assert f'cvops_drift_detected{{current="{kind}",reference="{bikes_reference.name}"}} 1.0' in prom


def test_mot17_other_scene_drifts_in_image_stats(detector: Detector, tmp_path: Path) -> None:
    train = fixture_path("mot17-mini/train")
    result = detect_drift(
        train / "MOT17-04-FRCNN" / "img1", train / "MOT17-05-FRCNN" / "img1", tmp_path, detector=detector
    )
    assert result.is_drifted, result.to_dict()
    assert {"brightness_gray", "contrast_gray", "blur_laplacian_var"} <= set(result.drifted_features)
    assert (result.reference, result.current) == ("MOT17-04-FRCNN/img1", "MOT17-05-FRCNN/img1")
    assert result.drift_share >= 0.5


def test_mot17_same_sequence_split_does_not_drift(detector: Detector, tmp_path: Path) -> None:
    frames = sorted((fixture_path("mot17-mini/train/MOT17-04-FRCNN") / "img1").glob("*.jpg"))
    even = write_list(tmp_path / "even.txt", frames[0::2])
    odd = write_list(tmp_path / "odd.txt", frames[1::2])
    result = detect_drift(even, odd, tmp_path / "out", detector=detector)
    assert not result.is_drifted, result.to_dict()
    assert result.drift_share <= 0.1


def test_dataset_reference_lists_its_images() -> None:
    """A DATASET reference (the coco8 YOLO data.yaml folder) names its train and val images."""
    from cvops.monitoring.inputs import frame_paths

    paths = frame_paths(fixture_path("coco8"))
    assert len(paths) == 8
    assert all(p.is_file() and p.suffix == ".jpg" for p in paths)
