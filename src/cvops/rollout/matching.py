"""Per-image matching of detections to ground truth, and COCO mAP / recall of any image resample.

A per-image bootstrap of mAP needs mAP on hundreds of resamples. Running COCOeval on each is
too slow, but its matching is per image (and per category), so it does not change when images
are drawn several times: match once, then weight each image by how often a resample drew it.
The mAP of a weighted sample follows COCOeval's ``accumulate`` (detections of a category sorted
by score over all images, cumulative true and false positives, 101-point interpolated
precision, mean over IoU 0.50:0.95 and over categories with ground truth).

Differences from COCOeval: crowd boxes are left out (a detection on a crowd box counts as a false
positive instead of being ignored) and there are no area ranges (area "all" only). With all
weights 1 this gives COCOeval's mAP50-95 on data without crowd boxes (tested).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cvops.errors import InvalidInputError
from cvops.evaluation.detection import match_greedy_by_score

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETS_PER_IMAGE = 100  # COCOeval's maxDets for mAP, per image and category


@dataclass(frozen=True, slots=True, eq=False)
class ImageMatches:
    """One model's detections matched to ground truth, image by image.

    Attributes:
        category_ids: Category id of each class index, sorted.
        gt_counts: Non-crowd ground-truth boxes per image and class, shape (I, K).
        det_image: Image index of each kept detection, shape (D,).
        det_class: Class index of each detection, shape (D,).
        det_score: Score of each detection, shape (D,).
        det_is_tp: Whether each detection matched a box, per IoU threshold, shape (D, T).
        tp_50: Boxes matched at IoU 0.5 by detections scoring at least the operating
            threshold, per image, shape (I,) (the counted recall of
            :mod:`cvops.evaluation.detection`).
    """

    category_ids: tuple[int, ...]
    gt_counts: IntArray
    det_image: IntArray
    det_class: IntArray
    det_score: FloatArray
    det_is_tp: BoolArray
    tp_50: IntArray


def _xyxy(boxes_xywh: Sequence[Sequence[float]]) -> FloatArray:
    boxes = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def _iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise IoU in float64, shape (N, M), as COCOeval computes it (no +1 on sides)."""
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    iou: FloatArray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou


def _is_matched(iou: FloatArray, iou_threshold: float) -> BoolArray:
    """Greedy one-to-one matching by score (rows sorted by descending score); whether each row matched."""
    allowed = np.ones(iou.shape, np.bool_)
    matched: BoolArray = match_greedy_by_score(iou, allowed, iou_threshold) >= 0  # type: ignore[arg-type]
    return matched


def match_images(
    ground_truth: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], score_threshold: float
) -> ImageMatches:
    """Match COCO result rows to the ground truth of each image.

    Args:
        ground_truth: Parsed COCO ground truth (``images``, ``annotations``, ``categories``).
        rows: COCO result rows (``image_id``, ``category_id``, ``bbox`` xywh pixels, ``score``).
        score_threshold: Operating point of the counted recall.
    """
    category_ids = tuple(sorted(int(c["id"]) for c in ground_truth["categories"]))
    class_of = {category: k for k, category in enumerate(category_ids)}
    image_ids = sorted(int(image["id"]) for image in ground_truth["images"])
    image_of = {image_id: i for i, image_id in enumerate(image_ids)}
    gt: dict[tuple[int, int], list[Sequence[float]]] = {}
    for annotation in ground_truth["annotations"]:
        if not annotation.get("iscrowd", 0):
            key = (image_of[int(annotation["image_id"])], class_of[int(annotation["category_id"])])
            gt.setdefault(key, []).append(annotation["bbox"])
    dt: dict[tuple[int, int], list[Mapping[str, Any]]] = {}
    for row in rows:
        key = (image_of[int(row["image_id"])], class_of[int(row["category_id"])])
        dt.setdefault(key, []).append(row)

    gt_counts = np.zeros((len(image_ids), len(category_ids)), np.int64)
    for (i, k), boxes in gt.items():
        gt_counts[i, k] = len(boxes)
    tp_50 = np.zeros(len(image_ids), np.int64)
    images: list[int] = []
    classes: list[int] = []
    scores: list[float] = []
    hits: list[BoolArray] = []
    for (i, k), found in sorted(dt.items()):
        found = sorted(found, key=lambda r: -float(r["score"]))  # stable, as COCOeval's mergesort
        gt_boxes = _xyxy(gt.get((i, k), []))
        det_scores = np.array([float(r["score"]) for r in found], np.float64)
        det_boxes = _xyxy([r["bbox"] for r in found])
        # float64 IoU, as COCOeval: a float32 IoU can flip a match sitting on a threshold.
        iou = _iou(det_boxes, gt_boxes)
        kept = iou[:MAX_DETS_PER_IMAGE]
        is_tp = np.stack([_is_matched(kept, float(t)) for t in IOU_THRESHOLDS], axis=1)
        tp_50[i] += int(_is_matched(iou[det_scores >= score_threshold], 0.5).sum())
        n = is_tp.shape[0]
        images += [i] * n
        classes += [k] * n
        scores += det_scores[:n].tolist()
        hits.append(is_tp)
    return ImageMatches(
        category_ids=category_ids,
        gt_counts=gt_counts,
        det_image=np.array(images, np.int64),
        det_class=np.array(classes, np.int64),
        det_score=np.array(scores, np.float64),
        det_is_tp=np.concatenate(hits) if hits else np.zeros((0, len(IOU_THRESHOLDS)), np.bool_),
        tp_50=tp_50,
    )


def _interpolated_precision(recall: FloatArray, precision: FloatArray) -> FloatArray:
    """COCOeval's precision at the 101 recall points, for each row, shape (B, R)."""
    rows, n = recall.shape
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    # One searchsorted for all rows: offset row b by 2b (recall lies in [0, 1]).
    offset = 2.0 * np.arange(rows, dtype=np.float64)[:, None]
    flat = (recall + offset).ravel()
    queries = (RECALL_THRESHOLDS[None, :] + offset).ravel()
    index = np.searchsorted(flat, queries, side="left").reshape(rows, -1) - (np.arange(rows) * n)[:, None]
    is_valid = index < n
    picked = np.take_along_axis(envelope, np.minimum(index, n - 1), axis=1)
    return np.where(is_valid, picked, 0.0)


def weighted_map_50_95(matches: ImageMatches, image_weights: npt.ArrayLike) -> FloatArray:
    """Return mAP50-95 for each row of image weights (how often each image was drawn).

    Args:
        matches: The matching of one model.
        image_weights: Shape (B, I) (or (I,) for one sample), non-negative counts.

    Returns:
        mAP per row, shape (B,); 0.0 for a row whose images hold no ground truth.
    """
    weights = np.atleast_2d(np.asarray(image_weights, np.float64))
    if weights.shape[1] != matches.gt_counts.shape[0]:
        raise InvalidInputError(
            f"image_weights: expected {matches.gt_counts.shape[0]} columns, got {weights.shape[1]}"
        )
    rows = weights.shape[0]
    ap_sum = np.zeros(rows)
    class_count = np.zeros(rows)
    for k in range(len(matches.category_ids)):
        positives = weights @ matches.gt_counts[:, k]
        has_gt = positives > 0
        if not has_gt.any():
            continue
        class_count += has_gt
        selected = np.flatnonzero(matches.det_class == k)
        if selected.size == 0:
            continue  # AP 0 where the class has ground truth
        order = selected[np.argsort(-matches.det_score[selected], kind="mergesort")]
        w = weights[:, matches.det_image[order]]
        ap = np.zeros(rows)
        for t in range(len(IOU_THRESHOLDS)):
            is_tp = matches.det_is_tp[order, t]
            true_pos = np.cumsum(w * is_tp, axis=1)
            false_pos = np.cumsum(w * ~is_tp, axis=1)
            total = true_pos + false_pos
            precision = np.divide(true_pos, total, out=np.zeros_like(total), where=total > 0)
            recall = true_pos / np.maximum(positives, 1e-12)[:, None]
            ap += _interpolated_precision(recall, precision).mean(axis=1)
        ap_sum += np.where(has_gt, ap / len(IOU_THRESHOLDS), 0.0)
    return np.divide(ap_sum, class_count, out=np.zeros(rows), where=class_count > 0)


def weighted_recall_50(matches: ImageMatches, image_weights: npt.ArrayLike) -> FloatArray:
    """Return the counted recall at IoU 0.5 for each row of image weights, shape (B,)."""
    weights = np.atleast_2d(np.asarray(image_weights, np.float64))
    positives = weights @ matches.gt_counts.sum(axis=1)
    hits = weights @ matches.tp_50
    recall: FloatArray = np.divide(hits, positives, out=np.zeros(weights.shape[0]), where=positives > 0)
    return recall
