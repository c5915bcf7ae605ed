"""Canary routing between a champion and a challenger model, and shadow-traffic agreement.

The configuration reads the same fields as a KServe InferenceService, so one document drives a
cluster and the local router: ``spec.predictor.canaryTrafficPercent``, plus the annotation
``cvops.io/shadow-traffic-percent`` for mirroring (KServe itself has no shadow field).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cvops.contracts.wire import FrameResult
from cvops.detection.types import Detections
from cvops.errors import InvalidInputError
from cvops.metrics.agreement import match_detections

SHADOW_ANNOTATION = "cvops.io/shadow-traffic-percent"


class Variant(StrEnum):
    """Which model answers a request."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"


class RouterConfig(BaseModel):
    """Traffic split, named as in the InferenceService spec."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    canaryTrafficPercent: int = Field(0, ge=0, le=100)  # KServe's field name
    shadowTrafficPercent: int = Field(0, ge=0, le=100)

    @classmethod
    def from_inference_service(cls, manifest: dict[str, Any]) -> RouterConfig:
        """Read the split from an InferenceService manifest (as loaded from YAML or JSON).

        Raises:
            InvalidInputError: When the manifest is not an InferenceService or a value is out of range.
        """
        if manifest.get("kind") != "InferenceService":
            raise InvalidInputError(f"manifest: expected kind InferenceService, got {manifest.get('kind')!r}")
        predictor = manifest.get("spec", {}).get("predictor", {})
        annotations = manifest.get("metadata", {}).get("annotations", {}) or {}
        try:
            return cls(
                canaryTrafficPercent=int(predictor.get("canaryTrafficPercent", 0)),
                shadowTrafficPercent=int(annotations.get(SHADOW_ANNOTATION, 0)),
            )
        except ValueError as error:
            raise InvalidInputError(f"manifest: {error}") from error


def stream_bucket(stream_id: str) -> int:
    """Return a stable bucket 0..99 for a stream, the same in every process and run."""
    return int.from_bytes(hashlib.sha256(stream_id.encode()).digest()[:8], "big") % 100


def choose_variant(stream_id: str | None, canary_percent: int, draw: float) -> Variant:
    """Pick the variant: by the stream's bucket (sticky), else by ``draw`` in [0, 1)."""
    bucket = stream_bucket(stream_id) if stream_id is not None else int(draw * 100)
    return Variant.CHALLENGER if bucket < canary_percent else Variant.CHAMPION


@dataclass(frozen=True, slots=True)
class FrameAgreement:
    """How a challenger's answer compares with the champion's on one frame.

    Attributes:
        matched_fraction: Matched boxes over the larger of the two box counts (1.0 when both are empty).
        mean_iou: Mean IoU of matched boxes (1.0 when nothing to match).
        class_agreement: Share of matched pairs with the same class name.
        score_shift: Mean challenger-minus-champion score over matched pairs.
    """

    matched_fraction: float
    mean_iou: float
    class_agreement: float
    score_shift: float


def _to_detections(result: FrameResult, vocabulary: dict[str, int]) -> Detections:
    ids = [vocabulary.setdefault(d.class_name, len(vocabulary)) for d in result.detections]
    names = tuple(vocabulary)
    return Detections.from_arrays(
        np.array([d.xyxy for d in result.detections], np.float32).reshape(-1, 4),
        np.array([d.score for d in result.detections], np.float32),
        np.array(ids, np.int64),
        names,
    )


def compare_frames(
    champion: FrameResult, challenger: FrameResult, iou_threshold: float = 0.5
) -> FrameAgreement:
    """Match the two answers' boxes regardless of class and summarize their agreement."""
    vocabulary: dict[str, int] = {}
    a = _to_detections(champion, vocabulary)
    b = _to_detections(challenger, vocabulary)
    largest = max(len(a), len(b))
    if largest == 0:
        return FrameAgreement(1.0, 1.0, 1.0, 0.0)
    matches = match_detections(a, b, iou_threshold, class_aware=False)
    if len(matches.iou) == 0:
        return FrameAgreement(0.0, 0.0, 0.0, 0.0)
    same_class = a.class_ids[matches.a_index] == b.class_ids[matches.b_index]
    return FrameAgreement(
        matched_fraction=len(matches.iou) / largest,
        mean_iou=float(matches.iou.mean()),
        class_agreement=float(same_class.mean()),
        score_shift=float((b.scores[matches.b_index] - a.scores[matches.a_index]).mean()),
    )
