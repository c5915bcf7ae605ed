"""COCO box mAP through pycocotools, the reference implementation."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvops.detection.types import Detections
from cvops.errors import InvalidInputError

# COCOeval.stats, in order.
STAT_NAMES = (
    "map_50_95", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "ar_1", "ar_10", "ar_100", "ar_small", "ar_medium", "ar_large",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CocoStats:
    """The twelve COCOeval bbox statistics (fractions in 0..1, -1 where undefined)."""

    values: tuple[float, ...]

    def as_dict(self) -> dict[str, float]:
        """Return the statistics keyed by name (``map_50_95``, ``map_50``, ...)."""
        return dict(zip(STAT_NAMES, self.values, strict=True))

    @property
    def map_50_95(self) -> float:
        """Return mAP averaged over IoU 0.50:0.95."""
        return self.values[0]

    @property
    def map_50(self) -> float:
        """Return mAP at IoU 0.50."""
        return self.values[1]


def to_coco_results(
    image_id: int, detections: Detections, category_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """Convert one image's detections into COCO result rows (bbox as x, y, w, h pixels).

    Args:
        image_id: The image's id in the ground truth.
        detections: Detections in original-image pixels.
        category_ids: COCO category id of each model class id.
    """
    rows = []
    for box, score, class_id in zip(
        detections.xyxy.tolist(), detections.scores.tolist(), detections.class_ids.tolist(), strict=True
    ):
        x1, y1, x2, y2 = box
        rows.append(
            {
                "image_id": image_id,
                "category_id": category_ids[class_id],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": score,
            }
        )
    return rows


def evaluate_coco(ground_truth: Path, results: list[dict[str, Any]]) -> CocoStats:
    """Run pycocotools' COCOeval (bbox) on result rows against a COCO ground-truth file.

    Raises:
        InvalidInputError: When there are no result rows (COCOeval cannot score nothing).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        raise InvalidInputError("results: expected at least one detection to score, got none")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_gt = COCO(str(ground_truth))
        coco_dt = coco_gt.loadRes(json.loads(json.dumps(results)))
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return CocoStats(tuple(float(v) for v in evaluator.stats))
