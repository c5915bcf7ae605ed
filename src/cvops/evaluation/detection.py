"""Score detections against COCO ground truth: COCOeval mAP plus recall, confusion and PR curves.

mAP50-95, mAP50, mAP75, per-class AP and the PR curves are pycocotools' COCOeval numbers
(bbox, area "all", at most 100 detections per image), taken from
:func:`cvops.metrics.coco.run_coco_eval` unchanged.

Recall, per-class precision/recall and the confusion matrix are counts at one operating point,
which COCOeval does not give:

- Only predictions scoring at least ``score_threshold`` take part (default 0.25, the
  detectors' own default), and only non-crowd ground-truth boxes (``iscrowd`` 1 are left out
  of both sides, so a prediction on a crowd region counts as a false positive).
- Matching is per image, greedy by score and one-to-one: predictions are visited from the
  highest score down (ties keep input order); each takes the still-unmatched ground-truth box
  of the same class with the highest IoU, if that IoU is at least the threshold.
- ``recall_50`` / ``recall_75`` = matched ground-truth boxes / all ground-truth boxes, matching
  at IoU 0.5 / 0.75.
- The confusion matrix (rows: ground-truth class, columns: predicted class, last row and column:
  background) matches at IoU 0.5: first same-class pairs as above (the diagonal), then the
  leftover predictions and boxes of different classes, again greedy by score (confusions);
  a leftover prediction is a false positive (background row), a leftover box a miss
  (background column). Row sums are ground-truth counts, column sums prediction counts, so a
  class's precision and recall at IoU 0.5 are its diagonal over its column and row sums.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cvops.detection.ops import box_iou
from cvops.errors import InvalidInputError
from cvops.metrics.coco import CocoEvaluation, CocoStats, run_coco_eval

BACKGROUND = "background"

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class EvaluationSettings:
    """The operating point of the counted metrics (recall, per-class P/R, confusion matrix).

    Attributes:
        score_threshold: Predictions scoring below this are left out of the counted metrics
            (mAP and PR curves always use every prediction, as COCOeval does).
        confusion_iou_threshold: IoU at which the confusion matrix and per-class P/R match.
    """

    score_threshold: float = 0.25
    confusion_iou_threshold: float = 0.5

    def __post_init__(self) -> None:
        """Reject out-of-range values with what was expected."""
        for name in ("score_threshold", "confusion_iou_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"{name}: expected a value in [0, 1], got {value}")


@dataclass(frozen=True, slots=True)
class ClassMetrics:
    """One category's numbers.

    Attributes:
        category_id: COCO category id.
        name: Category name.
        gt_count: Non-crowd ground-truth boxes.
        pred_count: Predictions at or above the score threshold.
        precision: Matched predictions / ``pred_count`` at the confusion IoU; None without predictions.
        recall: Matched boxes / ``gt_count`` at the confusion IoU; None without ground truth.
        ap_50_95: COCOeval AP over IoU 0.50:0.95; None without ground truth.
        ap_50: COCOeval AP at IoU 0.50; None without ground truth.
    """

    category_id: int
    name: str
    gt_count: int
    pred_count: int
    precision: float | None
    recall: float | None
    ap_50_95: float | None
    ap_50: float | None


@dataclass(frozen=True, slots=True, eq=False)
class ConfusionMatrix:
    """Counts of ground-truth class (rows) against predicted class (columns).

    Attributes:
        class_names: The K category names, then ``"background"``.
        counts: Shape (K + 1, K + 1), int64; ``counts[i, j]``: boxes of class i predicted as j.
            Row K holds false positives, column K missed boxes.
        iou_threshold: IoU a prediction needs to match a box.
        score_threshold: Predictions below this score were left out.
    """

    class_names: tuple[str, ...]
    counts: IntArray
    iou_threshold: float
    score_threshold: float

    def __post_init__(self) -> None:
        """Check the matrix is square and sized to the names."""
        k = len(self.class_names)
        if self.counts.shape != (k, k):
            raise InvalidInputError(f"counts: expected shape ({k}, {k}), got {self.counts.shape}")


@dataclass(frozen=True, slots=True, eq=False)
class PrCurve:
    """COCOeval's interpolated precision-recall curve of one category (area all, 100 dets).

    Attributes:
        category_id: COCO category id.
        name: Category name.
        recall: Recall points, shape (R,) = (101,), 0.00 to 1.00.
        precision_50: Precision at each recall point at IoU 0.50, shape (R,).
        precision_75: Precision at each recall point at IoU 0.75, shape (R,).
    """

    category_id: int
    name: str
    recall: npt.NDArray[np.float64]
    precision_50: npt.NDArray[np.float64]
    precision_75: npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class DetectionReport:
    """Everything :func:`evaluate_detections` measures (fractions in 0..1).

    Attributes:
        map_50_95: COCOeval mAP over IoU 0.50:0.95 (``stats[0]``).
        map_50: COCOeval mAP at IoU 0.50 (``stats[1]``).
        map_75: COCOeval mAP at IoU 0.75 (``stats[2]``).
        recall_50: Share of ground-truth boxes matched at IoU 0.5 (see the module docstring).
        recall_75: Share of ground-truth boxes matched at IoU 0.75.
        settings: The operating point of the counted metrics.
        coco_stats: All twelve COCOeval statistics.
        per_class: One entry per ground-truth category, by category id.
        confusion: Confusion matrix at ``settings``.
        pr_curves: PR curves of the categories that have ground truth.
        image_count: Images in the ground truth.
        gt_count: Non-crowd ground-truth boxes.
        detection_count: Predictions given (all scores).
    """

    map_50_95: float
    map_50: float
    map_75: float
    recall_50: float
    recall_75: float
    settings: EvaluationSettings
    coco_stats: CocoStats
    per_class: tuple[ClassMetrics, ...]
    confusion: ConfusionMatrix
    pr_curves: tuple[PrCurve, ...]
    image_count: int
    gt_count: int
    detection_count: int


def read_coco_ground_truth(path: Path) -> dict[str, Any]:
    """Read and check a COCO ground-truth file (``images``, ``annotations``, ``categories``).

    Raises:
        InvalidInputError: When the file is missing, not JSON, or misses one of the three lists.
    """
    data = _read_json(path, "ground truth")
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: expected a COCO ground-truth object, got {type(data).__name__}")
    check_coco_ground_truth(data, str(path))
    return data


def read_coco_results(path: Path) -> list[dict[str, Any]]:
    """Read a COCO results file: a JSON list of ``{image_id, category_id, bbox, score}``.

    Raises:
        InvalidInputError: When the file is missing, not JSON, or not a list of result rows.
    """
    data = _read_json(path, "detections")
    if not isinstance(data, list):
        raise InvalidInputError(f"{path}: expected a JSON list of COCO results, got {type(data).__name__}")
    _check_results(data, str(path))
    return data


def check_coco_ground_truth(data: Mapping[str, Any], source: str) -> None:
    """Check the parts of COCO ground truth this module reads.

    Raises:
        InvalidInputError: Naming ``source`` and what was expected.
    """
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise InvalidInputError(f"{source}: expected a list under {key!r} (COCO ground truth)")
    if not data["categories"]:
        raise InvalidInputError(f"{source}: expected at least one category, got none")
    category_ids = [c.get("id") for c in data["categories"]]
    if len(set(category_ids)) != len(category_ids):
        raise InvalidInputError(f"{source}: expected unique category ids, got {category_ids}")
    image_ids = {image.get("id") for image in data["images"]}
    for index, ann in enumerate(data["annotations"]):
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise InvalidInputError(f"{source}: annotations[{index}].bbox: expected [x, y, w, h], got {bbox}")
        if ann.get("image_id") not in image_ids:
            raise InvalidInputError(
                f"{source}: annotations[{index}].image_id: {ann.get('image_id')} is not in 'images'"
            )
        if ann.get("category_id") not in category_ids:
            raise InvalidInputError(
                f"{source}: annotations[{index}].category_id: {ann.get('category_id')} is not in 'categories'"
            )


def evaluate_detections(
    gt_coco_json: Path,
    detections: Sequence[Mapping[str, Any]],
    settings: EvaluationSettings | None = None,
) -> DetectionReport:
    """Score COCO result rows against a COCO ground-truth file.

    Args:
        gt_coco_json: COCO ground truth (``images``, ``annotations``, ``categories``).
        detections: COCO result rows: ``image_id``, ``category_id``, ``bbox`` (x, y, w, h in
            pixels) and ``score``. Every image and category must be in the ground truth.
        settings: Operating point of the counted metrics; defaults to :class:`EvaluationSettings`.

    Raises:
        InvalidInputError: When a file or row breaks the format, a row names an image or
            category the ground truth does not have, or the ground truth has no box.
    """
    return evaluate_detections_data(read_coco_ground_truth(gt_coco_json), detections, settings)


def evaluate_detections_data(
    ground_truth: Mapping[str, Any],
    detections: Sequence[Mapping[str, Any]],
    settings: EvaluationSettings | None = None,
    source: str = "ground truth",
) -> DetectionReport:
    """Do :func:`evaluate_detections` on already-parsed ground truth (not modified)."""
    settings = settings or EvaluationSettings()
    check_coco_ground_truth(ground_truth, source)
    _check_results(detections, "detections")
    categories = sorted(ground_truth["categories"], key=lambda c: int(c["id"]))
    category_ids = [int(c["id"]) for c in categories]
    names = tuple(str(c.get("name", c["id"])) for c in categories)
    _check_results_against(detections, ground_truth, set(category_ids))
    gt_boxes = [a for a in ground_truth["annotations"] if not a.get("iscrowd", 0)]
    if not gt_boxes:
        raise InvalidInputError(f"{source}: expected at least one non-crowd box to score against, got none")

    coco = run_coco_eval(ground_truth, detections)
    if coco.category_ids != tuple(category_ids):  # our class axis must be COCOeval's
        raise InvalidInputError(f"{source}: COCOeval categories {coco.category_ids} != {category_ids}")
    counts = _Counts.of(ground_truth, detections, category_ids, settings)
    per_class = tuple(
        _class_metrics(k, category_ids[k], names[k], coco, counts.confusion) for k in range(len(names))
    )
    gt_count = int(counts.gt_per_class.sum())
    return DetectionReport(
        map_50_95=coco.stats.values[0],
        map_50=coco.stats.values[1],
        map_75=coco.stats.values[2],
        recall_50=int(counts.tp_50.sum()) / gt_count,
        recall_75=int(counts.tp_75.sum()) / gt_count,
        settings=settings,
        coco_stats=coco.stats,
        per_class=per_class,
        confusion=ConfusionMatrix(
            (*names, BACKGROUND), counts.confusion, settings.confusion_iou_threshold, settings.score_threshold
        ),
        pr_curves=_pr_curves(coco, names),
        image_count=len(ground_truth["images"]),
        gt_count=gt_count,
        detection_count=len(detections),
    )


def match_greedy_by_score(iou: FloatArray, allowed: npt.NDArray[np.bool_], iou_threshold: float) -> IntArray:
    """Match predictions to ground-truth boxes one-to-one, highest score first.

    Args:
        iou: IoU of predictions (rows, sorted by descending score) and boxes, shape (P, G).
        allowed: Which pairs may match, shape (P, G) (e.g. same class, not yet taken).
        iou_threshold: Least IoU of a match.

    Returns:
        Index of each prediction's box, -1 where unmatched, shape (P,).
    """
    matched = np.full(iou.shape[0], -1, np.int64)
    free = np.ones(iou.shape[1], np.bool_)
    for p in range(iou.shape[0]):
        candidates = allowed[p] & free & (iou[p] >= iou_threshold)
        if candidates.any():
            g = int(np.argmax(np.where(candidates, iou[p], -1.0)))
            matched[p] = g
            free[g] = False
    return matched


@dataclass(frozen=True, slots=True, eq=False)
class _Counts:
    """Counted matches over all images: per-class boxes, true positives and the confusion matrix."""

    gt_per_class: IntArray
    tp_50: IntArray
    tp_75: IntArray
    confusion: IntArray

    @classmethod
    def of(
        cls,
        ground_truth: Mapping[str, Any],
        detections: Sequence[Mapping[str, Any]],
        category_ids: list[int],
        settings: EvaluationSettings,
    ) -> _Counts:
        k = len(category_ids)
        index_of = {c: i for i, c in enumerate(category_ids)}
        gt_by_image: dict[Any, list[Mapping[str, Any]]] = {}
        for ann in ground_truth["annotations"]:
            if not ann.get("iscrowd", 0):
                gt_by_image.setdefault(ann["image_id"], []).append(ann)
        dt_by_image: dict[Any, list[Mapping[str, Any]]] = {}
        for row in detections:
            if float(row["score"]) >= settings.score_threshold:
                dt_by_image.setdefault(row["image_id"], []).append(row)
        gt_per_class = np.zeros(k, np.int64)
        tp_50 = np.zeros(k, np.int64)
        tp_75 = np.zeros(k, np.int64)
        confusion = np.zeros((k + 1, k + 1), np.int64)
        for image in ground_truth["images"]:
            gts = gt_by_image.get(image["id"], [])
            # A stable sort keeps input order among equal scores.
            dts = sorted(dt_by_image.get(image["id"], []), key=lambda r: -float(r["score"]))
            g_cls = np.array([index_of[a["category_id"]] for a in gts], np.int64)
            p_cls = np.array([index_of[r["category_id"]] for r in dts], np.int64)
            iou = box_iou(_xyxy([r["bbox"] for r in dts]), _xyxy([a["bbox"] for a in gts]))
            same = p_cls[:, None] == g_cls[None, :]
            np.add.at(gt_per_class, g_cls, 1)
            for tp, threshold in ((tp_75, 0.75), (tp_50, 0.5)):
                found = match_greedy_by_score(iou, same, threshold)
                np.add.at(tp, p_cls[found >= 0], 1)
            # Confusion: same-class pairs first, then leftovers of different classes.
            first = match_greedy_by_score(iou, same, settings.confusion_iou_threshold)
            taken = np.zeros(len(gts), np.bool_)
            taken[first[first >= 0]] = True
            leftover = first < 0
            allowed = leftover[:, None] & ~taken[None, :]
            second = match_greedy_by_score(iou, allowed, settings.confusion_iou_threshold)
            pairs = np.where(first >= 0, first, second)
            np.add.at(confusion, (g_cls[pairs[pairs >= 0]], p_cls[pairs >= 0]), 1)
            confusion[k, :k] += np.bincount(p_cls[pairs < 0], minlength=k)
            missed = np.ones(len(gts), np.bool_)
            missed[pairs[pairs >= 0]] = False
            confusion[:k, k] += np.bincount(g_cls[missed], minlength=k)
        return cls(gt_per_class, tp_50, tp_75, confusion)


def _class_metrics(
    k: int, category_id: int, name: str, coco: CocoEvaluation, confusion: IntArray
) -> ClassMetrics:
    gt_count = int(confusion[k].sum())
    pred_count = int(confusion[:, k].sum())
    hits = int(confusion[k, k])
    precision = coco.precision[:, :, k]
    has_ap = bool((precision > -1).all())
    return ClassMetrics(
        category_id=category_id,
        name=name,
        gt_count=gt_count,
        pred_count=pred_count,
        precision=hits / pred_count if pred_count else None,
        recall=hits / gt_count if gt_count else None,
        # COCOeval's own per-class AP: the mean of its precision over IoUs and recall points.
        ap_50_95=float(np.mean(precision)) if has_ap else None,
        ap_50=float(np.mean(precision[_iou_index(coco, 0.5)])) if has_ap else None,
    )


def _pr_curves(coco: CocoEvaluation, names: tuple[str, ...]) -> tuple[PrCurve, ...]:
    at_50, at_75 = _iou_index(coco, 0.5), _iou_index(coco, 0.75)
    return tuple(
        PrCurve(
            category_id,
            names[k],
            coco.recall_thresholds.copy(),
            coco.precision[at_50, :, k].copy(),
            coco.precision[at_75, :, k].copy(),
        )
        for k, category_id in enumerate(coco.category_ids)
        if (coco.precision[:, :, k] > -1).all()
    )


def _iou_index(coco: CocoEvaluation, iou: float) -> int:
    return int(np.flatnonzero(np.isclose(coco.iou_thresholds, iou))[0])


def _xyxy(boxes_xywh: list[Any]) -> FloatArray:
    xywh = np.asarray(boxes_xywh, np.float32).reshape(-1, 4)
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise InvalidInputError(f"{path}: no such {what} file") from error
    except IsADirectoryError as error:
        raise InvalidInputError(f"{path}: is a folder, expected a {what} JSON file") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"{path}: not valid JSON ({error})") from error


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_results(rows: Sequence[Any], source: str) -> None:
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InvalidInputError(f"{source}[{index}]: expected a result object, got {type(row).__name__}")
        for key in ("image_id", "category_id"):
            if not isinstance(row.get(key), int) or isinstance(row.get(key), bool):
                raise InvalidInputError(f"{source}[{index}].{key}: expected an integer, got {row.get(key)!r}")
        bbox = row.get("bbox")
        if not (isinstance(bbox, list | tuple) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise InvalidInputError(f"{source}[{index}].bbox: expected [x, y, w, h] numbers, got {bbox!r}")
        if bbox[2] < 0 or bbox[3] < 0:
            raise InvalidInputError(f"{source}[{index}].bbox: expected w, h >= 0, got {list(bbox)}")
        if not _is_number(row.get("score")):
            raise InvalidInputError(
                f"{source}[{index}].score: expected a finite number, got {row.get('score')!r}"
            )


def _check_results_against(
    rows: Sequence[Mapping[str, Any]], ground_truth: Mapping[str, Any], category_ids: set[int]
) -> None:
    image_ids = {image["id"] for image in ground_truth["images"]}
    for index, row in enumerate(rows):
        if row["image_id"] not in image_ids:
            raise InvalidInputError(
                f"detections[{index}].image_id: expected an image of the ground truth, got {row['image_id']}"
            )
        if row["category_id"] not in category_ids:
            raise InvalidInputError(
                f"detections[{index}].category_id: expected one of the ground truth's categories, "
                f"got {row['category_id']}"
            )
