from __future__ import annotations

from cvops.detection.types import Detections
from cvops.metrics.agreement import match_detections
from tests.conftest import dets


def test_matches_same_class_boxes_by_best_iou_once() -> None:
    a = dets([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]], class_ids=[0, 0, 1])
    b = dets([[21, 21, 31, 31], [0, 0, 10, 10], [0, 0, 10, 10]], class_ids=[0, 0, 0])
    matches = match_detections(a, b, 0.5)
    assert sorted(zip(matches.a_index.tolist(), matches.b_index.tolist(), strict=True)) == [(0, 1), (1, 0)]
    assert max(matches.iou.tolist()) == 1.0


def test_no_boxes_no_matches() -> None:
    assert len(match_detections(Detections.empty(), dets([[0, 0, 1, 1]])).iou) == 0
