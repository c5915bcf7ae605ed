"""COCO box mAP through pycocotools, the reference implementation."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

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
    if not results:
        raise InvalidInputError("results: expected at least one detection to score, got none")
    return run_coco_eval(ground_truth, results).stats


@dataclass(frozen=True, slots=True, eq=False)
class CocoEvaluation:
    """What COCOeval (bbox) computed: its twelve statistics and its accumulated precision.

    Attributes:
        stats: The twelve ``COCOeval.stats``.
        category_ids: Category id of each index of the precision's class axis (sorted, as COCOeval).
        iou_thresholds: IoU thresholds, shape (T,) = (10,): 0.50, 0.55, ..., 0.95.
        recall_thresholds: Recall points, shape (R,) = (101,): 0.00, 0.01, ..., 1.00.
        precision: Interpolated precision, shape (T, R, K), for area "all" and at most 100
            detections per image; -1 for a category without ground truth.
    """

    stats: CocoStats
    category_ids: tuple[int, ...]
    iou_thresholds: npt.NDArray[np.float64]
    recall_thresholds: npt.NDArray[np.float64]
    precision: npt.NDArray[np.float64]


def run_coco_eval(
    ground_truth: Path | Mapping[str, Any], results: Sequence[Mapping[str, Any]]
) -> CocoEvaluation:
    """Run pycocotools' COCOeval (bbox) and keep its statistics and precision array.

    Args:
        ground_truth: A COCO ground-truth file, or its parsed content (not modified).
        results: COCO result rows (``image_id``, ``category_id``, ``bbox`` x, y, w, h pixels,
            ``score``); not modified. None at all scores 0 for every category with ground truth.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        if isinstance(ground_truth, Path):
            coco_gt = COCO(str(ground_truth))
        else:
            coco_gt = COCO()
            coco_gt.dataset = json.loads(json.dumps(ground_truth))
            coco_gt.createIndex()
        if results:
            # loadRes adds fields to the rows it is given; hand it a copy.
            coco_dt = coco_gt.loadRes(json.loads(json.dumps(list(results))))
        else:  # loadRes cannot take an empty list; an empty result set scores 0
            coco_dt = COCO()
            coco_dt.dataset = {
                "images": list(coco_gt.dataset["images"]),
                "categories": list(coco_gt.dataset.get("categories", [])),
                "annotations": [],
            }
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    params = evaluator.params
    all_areas = list(params.areaRngLbl).index("all")
    return CocoEvaluation(
        stats=CocoStats(tuple(float(v) for v in evaluator.stats)),
        category_ids=tuple(int(c) for c in params.catIds),
        iou_thresholds=np.asarray(params.iouThrs, np.float64),
        recall_thresholds=np.asarray(params.recThrs, np.float64),
        precision=np.asarray(evaluator.eval["precision"][:, :, :, all_areas, -1], np.float64),
    )
