"""Per-frame uncertainty of a detector: classification doubt, box instability, model disagreement.

Class scores: the detectors of cvops keep only each box's top class score after NMS (the
decoders see all class scores, but carrying them through NMS would touch the serving path). So
each box is scored as a two-way choice, object of its class (``p``) against not (``1 - p``), and
the three classic measures are taken over that pair. Per box they are monotone in
``|p - 0.5|``; they differ in how a frame's boxes are pooled, following Brust et al.,
"Active Learning for Deep Object Detection" (2018), which compares max, mean and sum pooling:

- least confidence: ``1 - max(p, 1 - p)`` of the single most doubtful box (max), scaled to 0..1;
- margin: ``1 - |p - (1 - p)|`` averaged over the frame's boxes (mean);
- entropy: binary entropy in bits summed over the boxes (sum: crowded doubtful frames win).

A frame without any box scores 0 on all three (the detector sees nothing to doubt).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cvops.detection.types import Detections
from cvops.metrics.agreement import match_detections

FloatArray = npt.NDArray[np.float32]


def least_confidence(detections: Detections) -> float:
    """Return 0..1: how close the frame's most doubtful box is to a coin flip."""
    if not len(detections):
        return 0.0
    p = detections.scores.astype(np.float64)
    return float(np.max(2.0 * (1.0 - np.maximum(p, 1.0 - p))))


def margin(detections: Detections) -> float:
    """Return 0..1: one minus the mean gap between object and not-object over the frame's boxes."""
    if not len(detections):
        return 0.0
    p = detections.scores.astype(np.float64)
    return float(np.mean(1.0 - np.abs(2.0 * p - 1.0)))


def entropy(detections: Detections) -> float:
    """Return the summed binary entropy of the frame's boxes, in bits (0..number of boxes)."""
    if not len(detections):
        return 0.0
    p = np.clip(detections.scores.astype(np.float64), 1e-7, 1.0 - 1e-7)
    return float(np.sum(-(p * np.log2(p) + (1.0 - p) * np.log2(1.0 - p))))


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
