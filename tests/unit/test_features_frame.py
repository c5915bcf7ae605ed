"""Per-frame features: score entropy, image statistics and detection summaries on tiny inline frames."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from cvops.detection.types import Detections
from cvops.errors import InvalidInputError
from cvops.features.frame_features import frame_features, score_entropy_bits
from cvops.features.image_stats import image_stats
from tests.conftest import dets

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _binary_entropy(p: float) -> float:
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([], 0.0),
        ([0.5], 1.0),
        ([1.0], 0.0),
        ([0.0], 0.0),
        ([0.9], _binary_entropy(0.9)),
        ([0.5, 1.0], 0.5),
        ([0.1, 0.9, 0.3], (2 * _binary_entropy(0.1) + _binary_entropy(0.3)) / 3),
    ],
    ids=["empty", "half", "certain-yes", "certain-no", "p0.9", "mean-of-two", "symmetric"],
)
def test_score_entropy_bits_is_the_mean_binary_entropy(scores: list[float], expected: float) -> None:
    assert score_entropy_bits(np.asarray(scores, np.float32)) == pytest.approx(expected, abs=1e-5)


def test_frame_features_summarize_image_and_detections() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    detections = dets([[0, 0, 4, 4], [5, 5, 9, 9], [1, 1, 2, 2]], scores=[0.9, 0.5, 0.2])

    features = frame_features(image, detections, "cam0", T0, frame_index=7, pts_s=0.28)

    stats = image_stats(image)
    assert (features.brightness_gray, features.contrast_gray, features.blur_laplacian_var) == (
        stats.brightness,
        stats.contrast,
        stats.blur_laplacian_var,
    )
    assert features.detection_count == 3
    assert features.score_mean == pytest.approx((0.9 + 0.5 + 0.2) / 3, abs=1e-6)
    assert features.score_min == pytest.approx(0.2, abs=1e-6)
    assert features.score_entropy_bits == pytest.approx(
        (_binary_entropy(0.9) + 1.0 + _binary_entropy(0.2)) / 3, abs=1e-5
    )
    assert (features.image_width_px, features.image_height_px) == (32, 24)
    assert (features.camera_id, features.frame_index, features.pts_s) == ("cam0", 7, 0.28)


def test_frame_without_detections_has_undefined_scores_and_zero_entropy() -> None:
    features = frame_features(np.zeros((8, 8), np.uint8), Detections.empty(), "cam0", T0)

    assert features.detection_count == 0
    assert math.isnan(features.score_mean)
    assert math.isnan(features.score_min)
    assert features.score_entropy_bits == 0.0
    assert math.isnan(features.pts_s)
    assert features.brightness_gray == 0.0


def test_timestamp_is_converted_to_utc() -> None:
    local = datetime(2026, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))

    features = frame_features(np.zeros((4, 4, 3), np.uint8), Detections.empty(), "cam0", local)

    assert features.event_timestamp == T0
    assert features.event_timestamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("image", "camera_id", "timestamp", "frame_index", "message"),
    [
        (np.zeros((4, 4, 3), np.float32), "cam0", T0, 0, "uint8"),
        (np.zeros((4, 4, 4), np.uint8), "cam0", T0, 0, "(H, W, 3)"),
        (np.zeros((0, 4, 3), np.uint8), "cam0", T0, 0, "image_stats"),
        (np.zeros((4, 4, 3), np.uint8), "cam0", datetime(2026, 1, 1), 0, "timezone-aware"),
        (np.zeros((4, 4, 3), np.uint8), "", T0, 0, "camera_id"),
        (np.zeros((4, 4, 3), np.uint8), "cam0", T0, -1, "frame_index"),
    ],
    ids=["float-image", "four-channels", "empty-image", "naive-time", "empty-camera", "negative-index"],
)
def test_bad_input_is_a_clear_error(
    image: np.ndarray, camera_id: str, timestamp: datetime, frame_index: int, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        frame_features(image, Detections.empty(), camera_id, timestamp, frame_index=frame_index)


@pytest.mark.parametrize("seed", [0, 1, 2], ids=["seed0", "seed1", "seed2"])
def test_blur_matches_the_float64_laplacian_variance(seed: int) -> None:
    import cv2

    image = np.random.default_rng(seed).integers(0, 256, (37, 53), dtype=np.uint8)
    reference = cv2.Laplacian(image, cv2.CV_64F).var()

    assert image_stats(image).blur_laplacian_var == pytest.approx(reference, rel=1e-9)
