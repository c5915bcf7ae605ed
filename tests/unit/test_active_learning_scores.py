"""Uncertainty scores of one frame's detections: tables of hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from cvops.active_learning import uncertainty
from cvops.detection.types import Detections
from cvops.errors import InvalidDetectionsError
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


def with_class_scores(class_scores: list[list[float]]) -> Detections:
    """One box per row of ``class_scores``, each labeled with its best class."""
    rows = np.asarray(class_scores, np.float32).reshape(len(class_scores), -1)
    vocabulary = tuple("abcdefgh"[: rows.shape[1]])
    return Detections.from_arrays(
        [[0, 0, 10, 10]] * len(rows), rows.max(axis=1), rows.argmax(axis=1), vocabulary, class_scores=rows
    )


def old_binary_scores(scores: npt.NDArray[np.float32]) -> tuple[float, float, float]:
    """The measures before class scores: each box as object (p) against not (1 - p)."""
    if not len(scores):
        return 0.0, 0.0, 0.0
    p = scores.astype(np.float64)
    clipped = np.clip(p, 1e-7, 1.0 - 1e-7)
    return (
        float(np.max(2.0 * (1.0 - np.maximum(p, 1.0 - p)))),
        float(np.mean(1.0 - np.abs(2.0 * p - 1.0))),
        float(np.sum(-(clipped * np.log2(clipped) + (1.0 - clipped) * np.log2(1.0 - clipped)))),
    )


def scores_of(frame: Detections) -> tuple[float, float, float]:
    return uncertainty.least_confidence(frame), uncertainty.margin(frame), uncertainty.entropy(frame)


@pytest.mark.parametrize(
    "scores",
    [[], [0.0], [1.0], [0.5], [0.25, 0.9], [0.01, 0.3, 0.62, 0.999], [0.7] * 5],
    ids=["no-box", "zero", "one", "coin-flip", "two", "four", "five-equal"],
)
def test_boxes_without_class_scores_keep_the_binary_formulas(scores: list[float]) -> None:
    frame = dets([[0, 0, 10, 10]] * len(scores), scores)
    assert frame.class_scores is None
    # Entropy differs from the old clipped formula by under 3e-6 bits at p = 0 or 1.
    assert scores_of(frame) == pytest.approx(old_binary_scores(frame.scores), abs=1e-5)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_one_class_scores_equal_the_binary_fallback(p: float) -> None:
    one_class = with_class_scores([[p]])
    fallback = dets([[0, 0, 10, 10]], [p])
    assert scores_of(one_class) == pytest.approx(scores_of(fallback), abs=1e-9)


ENTROPY_TIE = -(2 * 0.375 * math.log2(0.375) + 0.25 * math.log2(0.25))
ENTROPY_0_6 = -(0.6 * math.log2(0.6) + 0.4 * math.log2(0.4))


@pytest.mark.parametrize(
    ("class_scores", "least_confidence", "margin", "entropy"),
    [
        # [0.6, 0.6] + background 0.4, over 1.6: q = [0.375, 0.375, 0.25], K = 3.
        ([[0.6, 0.6]], (1 - 0.375) * 1.5, 1.0, ENTROPY_TIE),
        # [0.6, 0.0] + background 0.4: q = [0.6, 0, 0.4].
        ([[0.6, 0.0]], 0.4 * 1.5, 0.8, ENTROPY_0_6),
        # [0.5, 0.5] + background 0.5: uniform over K = 3, the most doubtful box there is.
        ([[0.5, 0.5]], 1.0, 1.0, math.log2(3)),
        ([[1.0, 0.0, 0.0]], 0.0, 0.0, 0.0),
        # Two boxes: max, mean and sum of the two rows above.
        ([[0.6, 0.6], [0.6, 0.0]], (1 - 0.375) * 1.5, 0.9, ENTROPY_TIE + ENTROPY_0_6),
    ],
    ids=["two-way-tie", "one-clear-class", "uniform", "certain", "pooled"],
)
def test_class_scores_are_normalized_with_a_background_share(
    class_scores: list[list[float]], least_confidence: float, margin: float, entropy: float
) -> None:
    expected = (least_confidence, margin, entropy)
    assert scores_of(with_class_scores(class_scores)) == pytest.approx(expected, abs=1e-6)


def test_a_box_torn_between_two_classes_is_more_doubtful_than_one_clear_class() -> None:
    tie = with_class_scores([[0.6, 0.6, 0.0]])
    clear = with_class_scores([[0.6, 0.0, 0.0]])
    np.testing.assert_array_equal(tie.scores, clear.scores)
    assert uncertainty.margin(tie) > uncertainty.margin(clear)
    assert uncertainty.entropy(tie) > uncertainty.entropy(clear)
    assert uncertainty.least_confidence(tie) > uncertainty.least_confidence(clear)


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


@pytest.mark.parametrize(
    ("class_scores", "expected"),
    [
        ([], [0.0, 0.0, 0.0]),
        ([[0.5, 0.0, 0.0]], [1.0, 0.0, 0.0]),
        ([[0.9, 0.1, 0.0]], [BINARY_ENTROPY_0_9, BINARY_ENTROPY_0_9, 0.0]),
        ([[0.9, 0.0, 0.1], [0.1, 0.0, 0.5]], [2 * BINARY_ENTROPY_0_9, 0.0, BINARY_ENTROPY_0_9 + 1.0]),
    ],
    ids=["no-box", "coin-flip", "two-classes-in-question", "summed-over-boxes"],
)
def test_class_doubt_sums_each_class_binary_entropy_over_boxes(
    class_scores: list[list[float]], expected: list[float]
) -> None:
    frame = with_class_scores(class_scores) if class_scores else Detections.empty()
    np.testing.assert_allclose(uncertainty.class_doubt(frame, 3), expected, atol=1e-5)


def test_class_doubt_counts_the_top_score_for_its_own_class_without_class_scores() -> None:
    frame = Detections.from_arrays([[0, 0, 10, 10]] * 2, [0.5, 0.9], [2, 2], ("a", "b", "c"))
    np.testing.assert_allclose(
        uncertainty.class_doubt(frame, 3), [0.0, 0.0, 1.0 + BINARY_ENTROPY_0_9], atol=1e-5
    )


def test_class_doubt_rejects_class_scores_of_another_vocabulary() -> None:
    with pytest.raises(InvalidDetectionsError, match="expected 4 classes, got 3"):
        uncertainty.class_doubt(with_class_scores([[0.2, 0.3, 0.4]]), 4)
