"""Uncertainty scores of one frame's detections: tables of hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cvops.active_learning import uncertainty
from cvops.detection.types import Detections
from tests.conftest import dets

BINARY_ENTROPY_0_9 = -(0.9 * math.log2(0.9) + 0.1 * math.log2(0.1))


@pytest.mark.parametrize(
    ("scores", "least_confidence", "margin", "entropy"),
    [
        ([], 0.0, 0.0, 0.0),
        ([0.5], 1.0, 1.0, 1.0),
        ([1.0], 0.0, 0.0, 0.0),
        ([0.9], 0.2, 0.2, BINARY_ENTROPY_0_9),
        ([0.9, 0.5], 1.0, 0.6, BINARY_ENTROPY_0_9 + 1.0),
        ([0.1, 0.9], 0.2, 0.2, 2 * BINARY_ENTROPY_0_9),
    ],
    ids=["no-box", "coin-flip", "certain", "confident", "one-doubtful-of-two", "symmetric"],
)
def test_classification_scores_pool_boxes_by_max_mean_and_sum(
    scores: list[float], least_confidence: float, margin: float, entropy: float
) -> None:
    frame = dets([[0, 0, 10, 10]] * len(scores), np.asarray(scores, np.float32))
    assert uncertainty.least_confidence(frame) == pytest.approx(least_confidence, abs=1e-6)
    assert uncertainty.margin(frame) == pytest.approx(margin, abs=1e-6)
    assert uncertainty.entropy(frame) == pytest.approx(entropy, abs=1e-5)


def test_flip_boxes_horizontal_mirrors_x_and_is_its_own_inverse() -> None:
    boxes = np.array([[10, 5, 30, 25], [0, 0, 100, 50]], np.float32)
    flipped = uncertainty.flip_boxes_horizontal(boxes, 100)
    np.testing.assert_array_equal(flipped, [[70, 5, 90, 25], [0, 0, 100, 50]])
    np.testing.assert_array_equal(uncertainty.flip_boxes_horizontal(flipped, 100), boxes)


@pytest.mark.parametrize(
    ("original", "augmented", "expected"),
    [
        (dets([]), dets([]), 0.0),
        (dets([[0, 0, 10, 10]]), dets([[0, 0, 10, 10]]), 0.0),
        (dets([[0, 0, 10, 10]]), dets([]), 1.0),
        (dets([[0, 0, 10, 10]]), dets([[50, 50, 60, 60]]), 1.0),
        # IoU of [0,0,10,10] and [0,0,10,20] is 0.5: both boxes cost 0.5.
        (dets([[0, 0, 10, 10]]), dets([[0, 0, 10, 20]]), 0.5),
        # A stable confident box and a vanished weak one: (0 * 0.9 + 1 * 0.1) / (0.9 + 0.1 + 0.9).
        (
            dets([[0, 0, 10, 10], [40, 40, 50, 50]], np.array([0.9, 0.1], np.float32)),
            dets([[0, 0, 10, 10]], np.array([0.9], np.float32)),
            0.1 / 1.9,
        ),
    ],
    ids=["both-empty", "identical", "vanished", "moved-away", "half-overlap", "weak-box-vanished"],
)
def test_localization_instability_weights_one_minus_iou_by_score(
    original: Detections, augmented: Detections, expected: float
) -> None:
    assert uncertainty.localization_instability(original, augmented) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("champion", "challenger", "expected"),
    [
        (dets([]), dets([]), 0.0),
        (dets([[0, 0, 10, 10]]), dets([[0, 0, 10, 10]]), 0.0),
        (dets([[0, 0, 10, 10]]), dets([[0, 0, 10, 10]], class_ids=[1]), 1.0),
        (dets([[0, 0, 10, 10], [20, 20, 30, 30]]), dets([[0, 0, 10, 10]]), 1.0 - 2 / 3),
        (dets([[0, 0, 10, 10]]), dets([]), 1.0),
    ],
    ids=["both-empty", "agree", "other-class", "one-extra-box", "challenger-sees-nothing"],
)
def test_disagreement_is_one_minus_f1_of_class_aware_matches(
    champion: Detections, challenger: Detections, expected: float
) -> None:
    assert uncertainty.disagreement(champion, challenger) == pytest.approx(expected, abs=1e-6)
