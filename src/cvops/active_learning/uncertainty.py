"""Per-frame uncertainty of a detector: classification doubt, box instability, model disagreement.

Classification doubt is read from each box's class scores ``s_1..s_C`` (``Detections.class_scores``,
as the detector's head gives them). They are independent sigmoids, not a distribution, so each box
gets one: ``q = normalize([s_1, ..., s_C, 1 - max_c s_c])``, the class scores plus a background
share of one minus the top score, divided by their sum. A box without class scores (RT-DETR, or a
record not made by a detector) falls back to its top score ``p``: ``q = [p, 1 - p]``, object of its
class against not, which is also what the first form gives for a single class. With ``K = len(q)``,
the three classic measures are taken per box and pooled over the frame's boxes by max, mean and
sum, the three poolings compared by Brust et al., "Active Learning for Deep Object Detection" (2018):

- least confidence: ``(1 - max q) * K / (K - 1)`` of the single most doubtful box (max), in 0..1;
- margin: ``1 - (q_(1) - q_(2))``, one minus the gap between the two largest shares, averaged
  over the frame's boxes (mean), in 0..1;
- entropy: the Shannon entropy of ``q`` in bits, summed over the boxes (sum: crowded doubtful
  frames win).

So a box torn between two classes counts as more doubtful than one with the same top score and
one clear class. A frame without any box scores 0 on all three (the detector sees nothing to doubt).

Those three measures are dominated by the classes the detector already sees often. A class new
at a site (or rare in the training data) gets class scores near zero everywhere, so its frames
look *certain*. :func:`class_doubt` keeps one doubt per class instead: the binary entropy of each
box's score for that class (the head's sigmoids are one yes/no question per class), summed over
the frame's boxes. Ranked within each class over the pool (see ``ranking.class_balanced``), the
frames where a rare class is most in question rise as high as those of common classes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cvops.detection.types import Detections
from cvops.errors import InvalidDetectionsError
from cvops.features.frame_features import binary_entropy_bits
from cvops.metrics.agreement import match_detections

FloatArray = npt.NDArray[np.float32]

_EPSILON = 1e-12


def least_confidence(detections: Detections) -> float:
    """Return 0..1: how close the frame's most doubtful box is to a uniform guess over its shares."""
    if not len(detections):
        return 0.0
    q = _class_distributions(detections)
    k = q.shape[1]
    return float(np.max((1.0 - q.max(axis=1)) * k / (k - 1)))


def margin(detections: Detections) -> float:
    """Return 0..1: one minus the mean gap between each box's two largest shares."""
    if not len(detections):
        return 0.0
    top_two = np.sort(_class_distributions(detections), axis=1)[:, -2:]
    return float(np.mean(1.0 - (top_two[:, 1] - top_two[:, 0])))


def entropy(detections: Detections) -> float:
    """Return the summed Shannon entropy of the frame's boxes, in bits (0 log 0 counts as 0)."""
    if not len(detections):
        return 0.0
    q = _class_distributions(detections)
    return float(-np.sum(q * np.log2(np.maximum(q, _EPSILON))))


def class_doubt(detections: Detections, num_classes: int) -> npt.NDArray[np.float64]:
    """Return shape (num_classes,): per class, the summed binary entropy (bits) of its box scores.

    Each box contributes ``H(s_c) = -s_c log2 s_c - (1 - s_c) log2(1 - s_c)`` to class ``c``: 1 bit
    at ``s_c = 0.5``, near 0 when the head is sure either way. A box without class scores counts
    ``H(p)`` of its top score ``p`` for its own class only. A frame without boxes doubts nothing.
    """
    doubt = np.zeros(num_classes, np.float64)
    if not len(detections):
        return doubt
    if detections.class_scores is None:
        np.add.at(doubt, detections.class_ids, binary_entropy_bits(detections.scores.astype(np.float64)))
        return doubt
    if detections.class_scores.shape[1] != num_classes:
        raise InvalidDetectionsError(
            f"class_scores: expected {num_classes} classes, got {detections.class_scores.shape[1]}"
        )
    total: npt.NDArray[np.float64] = binary_entropy_bits(detections.class_scores.astype(np.float64)).sum(
        axis=0
    )
    return total


def _class_distributions(detections: Detections) -> npt.NDArray[np.float64]:
    """Return each box's ``q`` (see the module docstring), float64.

    The shape is (N, C + 1) with class scores, (N, 2) without.
    """
    if detections.class_scores is None:
        p = detections.scores.astype(np.float64)
        return np.stack([p, 1.0 - p], axis=1)
    scores = detections.class_scores.astype(np.float64)
    shares = np.concatenate([scores, 1.0 - scores.max(axis=1, keepdims=True)], axis=1)
    # The sum is >= 1 for scores in [0, 1]; the guard only keeps a bad input from dividing by 0.
    q: npt.NDArray[np.float64] = shares / np.maximum(shares.sum(axis=1, keepdims=True), _EPSILON)
    return q


def flip_boxes_horizontal(xyxy: FloatArray, width: int) -> FloatArray:
    """Mirror boxes (N, 4) ``x1, y1, x2, y2`` in pixels across the middle of an image ``width`` wide."""
    flipped = xyxy.copy()
    flipped[:, 0] = width - xyxy[:, 2]
    flipped[:, 2] = width - xyxy[:, 0]
    return flipped


def localization_instability(original: Detections, augmented: Detections) -> float:
    """Return 0..1: how much boxes move when the same frame is seen augmented (e.g. mirrored).

    ``augmented`` must already be mapped back into the original frame's pixels. Boxes of both
    passes are matched class-agnostically by IoU; each box contributes ``1 - IoU`` with its
    partner (1 when it has none), weighted by its score, so a confident box that vanishes or
    shifts under a flip counts most. Two empty passes score 0.
    """
    weight_total = float(original.scores.sum() + augmented.scores.sum())
    if weight_total <= 0.0:
        return 0.0
    matches = match_detections(original, augmented, iou_threshold=1e-6, class_aware=False)
    a_cost = np.ones(len(original), np.float64)
    b_cost = np.ones(len(augmented), np.float64)
    a_cost[matches.a_index] = 1.0 - matches.iou
    b_cost[matches.b_index] = 1.0 - matches.iou
    weighted = float(a_cost @ original.scores + b_cost @ augmented.scores)
    return weighted / weight_total


def disagreement(champion: Detections, challenger: Detections, iou_threshold: float = 0.5) -> float:
    """Return 0..1: one minus the F1 of the two models' boxes matched by class and IoU.

    The challenger's boxes play ground truth for the champion's (the measure is symmetric).
    Two empty records agree fully (0).
    """
    total = len(champion) + len(challenger)
    if total == 0:
        return 0.0
    matched = len(match_detections(champion, challenger, iou_threshold, class_aware=True).iou)
    return 1.0 - 2.0 * matched / total
