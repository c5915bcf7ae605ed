"""Candidates in model-input pixels -> final Detections in original-image pixels."""

from __future__ import annotations

from collections.abc import Sequence

from cvops.config import DetectorSettings
from cvops.detection.decoders import Candidates
from cvops.detection.ops import nms
from cvops.detection.preprocess import LetterboxTransform
from cvops.detection.types import Detections


def finalize(
    candidates: Sequence[Candidates],
    transforms: Sequence[LetterboxTransform],
    vocabulary: tuple[str, ...],
    settings: DetectorSettings,
    needs_nms: bool,
) -> list[Detections]:
    """Apply class-aware NMS (when the family needs it), cap at ``max_det``, map boxes back.

    Each kept box keeps its row of the candidates' class scores (when the decoder gives them).

    Args:
        candidates: Decoded boxes per image, in model-input pixels.
        transforms: The resize of each image, to invert.
        vocabulary: Class names indexed by class id.
        settings: Thresholds and the cap.
        needs_nms: False for NMS-free families (RT-DETR).
    """
    results = []
    for candidate, transform in zip(candidates, transforms, strict=True):
        if needs_nms:
            keep = nms(
                candidate.xyxy,
                candidate.scores,
                settings.iou_threshold,
                candidate.class_ids,
                settings.max_det,
            )
        else:
            keep = candidate.scores.argsort(kind="stable")[::-1][: settings.max_det]
        results.append(
            Detections.from_arrays(
                transform.to_original(candidate.xyxy[keep]),
                candidate.scores[keep],
                candidate.class_ids[keep],
                vocabulary,
                class_scores=None if candidate.class_scores is None else candidate.class_scores[keep],
            )
        )
    return results
