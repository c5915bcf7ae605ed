from __future__ import annotations

import cv2
import numpy as np
import pytest

from cvops.errors import InvalidInputError
from cvops.tracking.motion_compensation import (
    SparseFlowCompensator,
    identity_affine,
    warp_boxes_xyxy,
    warp_cxcywh,
)
from tests.conftest import fixture_path


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    image = cv2.imread(str(fixture_path("mot17-mini/train/MOT17-04-FRCNN/img1/000001.jpg")))
    assert image is not None
    return image


def grid_error_px(estimated: np.ndarray, truth: np.ndarray, width: int, height: int) -> float:
    """Largest distance between where the two affines send a 5x5 grid spanning the image."""
    xs, ys = np.meshgrid(np.linspace(0, width, 5), np.linspace(0, height, 5))
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], axis=1)
    return float(np.abs(points @ estimated.T.astype(np.float64) - points @ truth.T.astype(np.float64)).max())


def rotation(width: int, height: int, degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    affine = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, scale)
    affine[:, 2] += shift
    return affine.astype(np.float32)


@pytest.mark.parametrize(
    ("kind", "downscale"),
    [("shift", 4.0), ("shift", 2.0), ("large-shift", 4.0), ("rotate-zoom", 4.0), ("rotate-zoom", 3.0)],
    ids=["shift-x4", "shift-x2", "large-shift-x4", "rotate-zoom-x4", "rotate-zoom-x3"],
)
def test_recovers_a_known_camera_motion_within_a_pixel(
    frame: np.ndarray, kind: str, downscale: float
) -> None:
    height, width = frame.shape[:2]
    truth = {
        "shift": np.float32([[1, 0, 7.3], [0, 1, -4.6]]),
        "large-shift": np.float32([[1, 0, 41.0], [0, 1, 23.5]]),
        "rotate-zoom": rotation(width, height, 0.6, 1.015, (-5.0, 3.0)),
    }[kind]
    compensator = SparseFlowCompensator(downscale=downscale)
    np.testing.assert_array_equal(compensator.estimate(frame), identity_affine())  # first frame
    moved = cv2.warpAffine(frame, truth, (width, height), flags=cv2.INTER_LINEAR)
    estimated = compensator.estimate(moved)
    assert estimated.shape == (2, 3)
    assert estimated.dtype == np.float32
    assert grid_error_px(estimated, truth, width, height) < 1.0  # measured 0.04-0.21 px


def test_a_still_camera_gives_about_the_identity(frame: np.ndarray) -> None:
    compensator = SparseFlowCompensator()
    compensator.estimate(frame)
    height, width = frame.shape[:2]
    assert grid_error_px(compensator.estimate(frame.copy()), identity_affine(), width, height) < 0.05


def test_featureless_frames_give_the_identity() -> None:
    flat = np.full((270, 480, 3), 128, np.uint8)
    compensator = SparseFlowCompensator()
    for _ in range(3):
        np.testing.assert_array_equal(compensator.estimate(flat), identity_affine())


def test_a_new_frame_size_or_a_reset_starts_over(frame: np.ndarray) -> None:
    compensator = SparseFlowCompensator()
    compensator.estimate(frame)
    shifted = np.roll(frame, 6, axis=1)
    assert abs(compensator.estimate(shifted)[0, 2] - 6.0) < 1.0
    small = cv2.resize(frame, (960, 540))
    np.testing.assert_array_equal(compensator.estimate(small), identity_affine())
    compensator.reset()
    np.testing.assert_array_equal(compensator.estimate(small), identity_affine())


def test_grayscale_frames_and_excluded_boxes(frame: np.ndarray) -> None:
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    height, width = gray.shape
    compensator = SparseFlowCompensator()
    # Corners inside excluded boxes are not followed; the rest of the image still holds the motion.
    compensator.estimate(gray, exclude_xyxy=np.array([[0, 0, width / 2, height]], np.float32))
    estimated = compensator.estimate(np.roll(gray, -5, axis=0))
    assert abs(estimated[1, 2] + 5.0) < 1.0
    everything = np.array([[0, 0, width, height]], np.float32)
    compensator.estimate(gray, exclude_xyxy=everything)  # no corner left: next call is the identity
    np.testing.assert_array_equal(compensator.estimate(gray), identity_affine())


def gt_center_errors_px(sequence: str, downscale: float) -> tuple[float, float]:
    """Mean distance from each pedestrian's center at t-1 (raw, and warped by CMC) to its center at t."""
    folder = fixture_path(f"mot17-mini/train/{sequence}")
    gt = np.loadtxt(folder / "gt" / "gt.txt", delimiter=",")
    gt = gt[(gt[:, 6] == 1) & (gt[:, 7] == 1)]
    compensator = SparseFlowCompensator(downscale=downscale)
    raw, compensated = [], []
    for index, path in enumerate(sorted((folder / "img1").glob("*.jpg"))):
        affine = compensator.estimate(cv2.imread(str(path)))
        previous, current = gt[gt[:, 0] == index], gt[gt[:, 0] == index + 1]  # frames are 1-based
        for row in previous:
            match = current[current[:, 1] == row[1]]
            if not len(match):
                continue
            xyxy = np.array([[row[2], row[3], row[2] + row[4], row[3] + row[5]]], np.float32)
            target = match[0, 2:4] + match[0, 4:6] / 2
            warped = warp_boxes_xyxy(xyxy, affine)
            raw.append(np.hypot(*((xyxy[0, :2] + xyxy[0, 2:]) / 2 - target)))
            compensated.append(np.hypot(*((warped[0, :2] + warped[0, 2:]) / 2 - target)))
    return float(np.mean(raw)), float(np.mean(compensated))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("sequence", "downscale", "max_ratio"),
    [
        ("MOT17-05-FRCNN", 2.0, 0.5),  # walking camera, 640x480: measured 5.5 -> 1.8 px
        ("MOT17-10-FRCNN", 4.0, 0.7),  # moving camera, 1080p: measured 6.0 -> 2.9 px
        ("MOT17-13-FRCNN", 4.0, 0.6),  # camera on a bus: measured 8.0 -> 3.2 px
        ("MOT17-04-FRCNN", 4.0, 1.1),  # static camera: measured 0.89 -> 0.91 px (no harm)
    ],
    ids=["05-walking", "10-moving", "13-bus", "04-static"],
)
def test_compensation_brings_real_tracks_closer_to_their_next_box(
    sequence: str, downscale: float, max_ratio: float
) -> None:
    raw, compensated = gt_center_errors_px(sequence, downscale)
    assert compensated < max_ratio * raw


@pytest.mark.parametrize(
    ("frame_value", "message"),
    [
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        (np.zeros((10, 10, 4), np.uint8), "shape"),
        ([[0]], "uint8"),
    ],
    ids=["float", "four-channels", "list"],
)
def test_invalid_frames_raise(frame_value: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        SparseFlowCompensator().estimate(frame_value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "settings",
    [{"max_corners": 0}, {"downscale": 0.5}, {"min_points": 2}, {"quality_level": 0.0}],
    ids=["corners", "downscale", "min-points", "quality"],
)
def test_invalid_settings_raise(settings: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        SparseFlowCompensator(**settings)  # type: ignore[arg-type]


AFFINES = {
    "identity": np.float32([[1, 0, 0], [0, 1, 0]]),
    "shift": np.float32([[1, 0, 12.5], [0, 1, -3.0]]),
    "rotate-zoom": rotation(1920, 1080, 2.0, 1.1, (4.0, -7.0)),
}


@pytest.mark.parametrize("name", list(AFFINES), ids=list(AFFINES))
def test_warp_boxes_round_trip(name: str) -> None:
    xyxy = np.array([[100, 200, 150, 320], [0, 0, 10, 10], [1800, 900, 1900, 1070]], np.float32)
    affine = AFFINES[name]
    there = warp_boxes_xyxy(xyxy, affine)
    back = warp_boxes_xyxy(there, cv2.invertAffineTransform(affine).astype(np.float32))
    assert there.shape == (3, 4)
    assert there.dtype == np.float32
    np.testing.assert_allclose(back, xyxy, atol=1e-3)


def test_warp_moves_centers_and_scales_sizes() -> None:
    affine = rotation(0, 0, 90.0, 2.0, (10.0, 0.0))  # about the origin: (x, y) -> 2 * (y, -x) + (10, 0)
    boxes = np.array([[3.0, 4.0, 10.0, 20.0]], np.float32)
    np.testing.assert_allclose(warp_cxcywh(boxes, affine), [[18.0, -6.0, 20.0, 40.0]], atol=1e-4)
    shifted = warp_boxes_xyxy(np.array([[0, 0, 10, 20]], np.float32), AFFINES["shift"])
    np.testing.assert_allclose(shifted, [[12.5, -3.0, 22.5, 17.0]], atol=1e-5)
    assert warp_boxes_xyxy(np.zeros((0, 4), np.float32), AFFINES["shift"]).shape == (0, 4)
    with pytest.raises(InvalidInputError, match="affine"):
        warp_cxcywh(boxes, np.eye(3, dtype=np.float32))
    with pytest.raises(InvalidInputError, match="boxes_cxcywh"):
        warp_cxcywh(np.zeros((2, 3), np.float32), AFFINES["shift"])
