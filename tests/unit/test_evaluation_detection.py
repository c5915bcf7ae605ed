"""Recall, confusion matrix and PR curves on tiny hand-made COCO sets; mAP against COCOeval."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cvops.errors import InvalidInputError
from cvops.evaluation.detection import (
    EvaluationSettings,
    evaluate_detections,
    evaluate_detections_data,
    match_greedy_by_score,
    read_coco_results,
)

NAMES = ("cat", "dog")  # category ids 1, 2


def coco_gt(boxes: list[tuple[int, int, list[float]]], images: int = 1) -> dict[str, Any]:
    """COCO ground truth from ``(image_id, category_id, [x, y, w, h])`` rows; images 1..images."""
    return {
        "images": [
            {"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 100} for i in range(1, images + 1)
        ],
        "annotations": [
            {"id": n + 1, "image_id": i, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
            for n, (i, c, b) in enumerate(boxes)
        ],
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(NAMES)],
    }


def det(image_id: int, category_id: int, bbox: list[float], score: float = 0.9) -> dict[str, Any]:
    return {"image_id": image_id, "category_id": category_id, "bbox": bbox, "score": score}


BOX = [10.0, 10.0, 10.0, 10.0]
SHIFT_2 = [12.0, 10.0, 10.0, 10.0]  # IoU 80/120 = 0.67 with BOX: matches at 0.5, not at 0.75
SHIFT_6 = [16.0, 10.0, 10.0, 10.0]  # IoU 40/160 = 0.25: no match
OTHER = [50.0, 50.0, 10.0, 10.0]  # far from BOX


@pytest.mark.parametrize(
    ("gt", "dets", "recall_50", "recall_75"),
    [
        ([(1, 1, BOX)], [det(1, 1, BOX)], 1.0, 1.0),
        ([(1, 1, BOX)], [det(1, 1, SHIFT_2)], 1.0, 0.0),
        ([(1, 1, BOX)], [det(1, 1, SHIFT_6)], 0.0, 0.0),
        ([(1, 1, BOX)], [det(1, 2, BOX)], 0.0, 0.0),
        ([(1, 1, BOX)], [det(1, 1, BOX, score=0.2)], 0.0, 0.0),
        ([(1, 1, BOX)], [det(1, 1, BOX, score=0.25)], 1.0, 1.0),
        ([(1, 1, BOX), (1, 1, OTHER)], [det(1, 1, BOX), det(1, 1, BOX, 0.8)], 0.5, 0.5),
        ([(1, 1, BOX), (2, 1, BOX)], [det(1, 1, BOX)], 0.5, 0.5),
        ([(1, 1, BOX)], [], 0.0, 0.0),
    ],
    ids=[
        "exact",
        "iou-0.67",
        "iou-0.25",
        "wrong-class",
        "below-score-threshold",
        "at-score-threshold",
        "duplicate-counts-once",
        "other-image-not-matched",
        "no-detections",
    ],
)
def test_recall_at_iou_50_and_75(
    gt: list[tuple[int, int, list[float]]], dets: list[dict[str, Any]], recall_50: float, recall_75: float
) -> None:
    report = evaluate_detections_data(coco_gt(gt, images=2), dets)
    assert (report.recall_50, report.recall_75) == (recall_50, recall_75)


def test_matching_is_greedy_by_score_not_optimal() -> None:
    # Boxes A (x 10..20) and B (x 14..24). The 0.9 prediction (x 11..21) overlaps A best (IoU 0.82;
    # B 0.54) and takes it; the 0.8 one (x 8..18) then finds A taken and B too far (IoU 0.25).
    # An optimal assignment would match both; greedy by score, as COCOeval, matches one.
    gt = coco_gt([(1, 1, BOX), (1, 1, [14.0, 10.0, 10.0, 10.0])])
    dets = [det(1, 1, [11.0, 10.0, 10.0, 10.0], 0.9), det(1, 1, [8.0, 10.0, 10.0, 10.0], 0.8)]
    report = evaluate_detections_data(gt, dets)
    assert (report.recall_50, report.recall_75) == (0.5, 0.5)
    np.testing.assert_array_equal(report.confusion.counts, [[1, 0, 1], [0, 0, 0], [1, 0, 0]])


def test_match_greedy_by_score_takes_the_best_free_box_in_score_order() -> None:
    iou = np.array([[0.9, 0.6], [0.8, 0.0], [0.7, 0.55]], np.float32)  # rows in score order
    allowed = np.ones_like(iou, np.bool_)
    np.testing.assert_array_equal(match_greedy_by_score(iou, allowed, 0.5), [0, -1, 1])
    allowed[0, 0] = False
    np.testing.assert_array_equal(match_greedy_by_score(iou, allowed, 0.5), [1, 0, -1])
    np.testing.assert_array_equal(match_greedy_by_score(iou, allowed, 0.95), [-1, -1, -1])


def test_confusion_matrix_counts_hits_confusions_misses_and_false_positives() -> None:
    gt = coco_gt([(1, 1, BOX), (1, 2, OTHER), (1, 2, [80.0, 10.0, 10.0, 10.0])])
    dets = [
        det(1, 1, BOX),  # cat as cat
        det(1, 1, OTHER),  # dog predicted as cat
        det(1, 2, [30.0, 30.0, 5.0, 5.0]),  # dog where nothing is: false positive
        det(1, 1, [80.0, 10.0, 10.0, 10.0], 0.1),  # below threshold: ignored, the dog box is missed
    ]
    report = evaluate_detections_data(gt, dets)
    assert report.confusion.class_names == ("cat", "dog", "background")
    #                 pred: cat dog bg
    expected = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(report.confusion.counts, expected)
    cat, dog = report.per_class
    assert (cat.gt_count, cat.pred_count, cat.precision, cat.recall) == (1, 2, 0.5, 1.0)
    assert (dog.gt_count, dog.pred_count, dog.precision, dog.recall) == (2, 1, 0.0, 0.0)


def test_same_class_match_wins_over_a_higher_scored_confusion() -> None:
    gt = coco_gt([(1, 2, BOX)])
    report = evaluate_detections_data(gt, [det(1, 1, BOX, 0.9), det(1, 2, BOX, 0.8)])
    np.testing.assert_array_equal(report.confusion.counts, [[0, 0, 0], [0, 1, 0], [1, 0, 0]])
    assert report.recall_50 == 1.0


def test_crowd_boxes_are_left_out() -> None:
    gt = coco_gt([(1, 1, BOX), (1, 1, OTHER)])
    gt["annotations"][1]["iscrowd"] = 1
    report = evaluate_detections_data(gt, [det(1, 1, BOX)])
    assert (report.gt_count, report.recall_50) == (1, 1.0)


def test_diagonal_over_row_sums_is_per_class_recall_on_random_sets() -> None:
    rng = np.random.default_rng(0)
    boxes = [
        (int(rng.integers(1, 4)), int(rng.integers(1, 3)), [*rng.uniform(0, 60, 2).tolist(), 20.0, 20.0])
        for _ in range(30)
    ]
    dets = [
        det(
            i,
            int(rng.integers(1, 3)),
            [b[0] + rng.normal(0, 3), b[1] + rng.normal(0, 3), 20.0, 20.0],
            rng.random(),
        )
        for i, _, b in boxes
    ]
    report = evaluate_detections_data(coco_gt(boxes, images=3), dets, EvaluationSettings(score_threshold=0.3))
    counts = report.confusion.counts
    assert counts[:2].sum() == report.gt_count == 30
    assert counts[:, :2].sum() == sum(d["score"] >= 0.3 for d in dets)
    for k, metrics in enumerate(report.per_class):
        assert metrics.recall == counts[k, k] / counts[k].sum()
    assert report.recall_50 == np.trace(counts[:2, :2]) / 30


def _cocoeval_stats(gt: dict[str, Any], dets: list[dict[str, Any]], tmp_path: Path) -> list[float]:
    """pycocotools used directly, as its README shows: files in, stats out."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dets))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(tmp_path / "gt.json"))
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(str(tmp_path / "dt.json")), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats]


def test_map_and_class_ap_are_cocoeval_numbers(tmp_path: Path) -> None:
    gt = coco_gt([(1, 1, BOX), (1, 2, OTHER), (2, 1, BOX), (2, 1, OTHER)], images=2)
    dets = [det(1, 1, SHIFT_2, 0.9), det(1, 2, OTHER, 0.6), det(2, 1, BOX, 0.3), det(2, 2, OTHER, 0.8)]
    (tmp_path / "in.json").write_text(json.dumps(gt))
    report = evaluate_detections(tmp_path / "in.json", dets)
    stats = _cocoeval_stats(gt, dets, tmp_path)
    assert list(report.coco_stats.values) == stats
    assert (report.map_50_95, report.map_50, report.map_75) == tuple(stats[:3])
    aps = [c.ap_50_95 for c in report.per_class]
    assert np.mean(aps) == pytest.approx(report.map_50_95, abs=1e-12)
    assert np.mean([c.ap_50 for c in report.per_class]) == pytest.approx(report.map_50, abs=1e-12)


def test_pr_curves_come_from_cocoeval_and_skip_classes_without_boxes() -> None:
    report = evaluate_detections_data(coco_gt([(1, 1, BOX)]), [det(1, 1, BOX), det(1, 2, OTHER)])
    (curve,) = report.pr_curves
    assert curve.name == "cat"
    assert curve.recall.shape == curve.precision_50.shape == (101,)
    np.testing.assert_allclose(curve.precision_50, np.ones(101))  # COCOeval adds an epsilon
    assert report.per_class[1].ap_50_95 is None  # dog has no box
    assert report.per_class[1].precision == 0.0


def test_no_detections_scores_zero() -> None:
    report = evaluate_detections_data(coco_gt([(1, 1, BOX)]), [])
    assert (report.map_50_95, report.map_50, report.recall_50) == (0.0, 0.0, 0.0)
    assert report.detection_count == 0


@pytest.mark.parametrize(
    ("dets", "message"),
    [
        ([det(9, 1, BOX)], "detections[0].image_id: expected an image of the ground truth, got 9"),
        ([det(1, 7, BOX)], "detections[0].category_id: expected one of the ground truth's categories, got 7"),
        ([det(1, 1, [0, 0, -1, 2])], "detections[0].bbox: expected w, h >= 0"),
        ([det(1, 1, [0, 0, 1])], "detections[0].bbox: expected [x, y, w, h] numbers"),
        ([{**det(1, 1, BOX), "score": float("nan")}], "detections[0].score: expected a finite number"),
        ([{**det(1, 1, BOX), "image_id": "1"}], "detections[0].image_id: expected an integer"),
    ],
    ids=["unknown-image", "unknown-category", "negative-width", "short-bbox", "nan-score", "string-id"],
)
def test_bad_detections_are_rejected_with_the_row(dets: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(InvalidInputError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        evaluate_detections_data(coco_gt([(1, 1, BOX)]), dets)


def test_ground_truth_without_boxes_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="expected at least one non-crowd box"):
        evaluate_detections_data(coco_gt([]), [det(1, 1, BOX)])


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such detections file"), ("{", "not valid JSON"), ('{"a": 1}', "expected a JSON list")],
    ids=["missing", "broken", "not-a-list"],
)
def test_results_file_errors_name_the_file(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "dets.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidInputError, match=message) as error:
        read_coco_results(path)
    assert str(path) in str(error.value)


def test_settings_reject_out_of_range_thresholds() -> None:
    with pytest.raises(InvalidInputError, match=r"score_threshold: expected a value in \[0, 1\], got 1.5"):
        EvaluationSettings(score_threshold=1.5)
