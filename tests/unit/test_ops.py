from __future__ import annotations

import numpy as np
import pytest

from cvops.detection.ops import box_iou, cxcywh_to_xyxy, nms
from cvops.errors import InvalidInputError


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
        ([0, 0, 10, 10], [2, 2, 8, 8], 36 / 100),
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),
    ],
    ids=["same", "half-overlap", "disjoint", "contained", "degenerate"],
)
def test_box_iou_table(a: list[float], b: list[float], expected: float) -> None:
    iou = box_iou(np.array([a], np.float32), np.array([b], np.float32))
    assert iou.shape == (1, 1)
    assert iou[0, 0] == pytest.approx(expected, abs=1e-6)


def test_nms_is_class_aware_and_orders_by_score() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    classes = np.array([0, 0, 1, 0], np.int64)
    assert nms(boxes, scores, 0.5, classes).tolist() == [0, 2, 3]
    assert nms(boxes, scores, 0.5).tolist() == [0, 3]
    assert nms(boxes, scores, 0.5, classes, max_det=2).tolist() == [0, 2]


def test_nms_matches_torchvision_reference_on_random_boxes() -> None:
    torch = pytest.importorskip("torch")
    from torchvision.ops import batched_nms

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 600, (500, 2)).astype(np.float32)
    wh = rng.uniform(5, 120, (500, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], axis=1)
    scores = rng.uniform(0, 1, 500).astype(np.float32)
    classes = rng.integers(0, 4, 500).astype(np.int64)
    for threshold in (0.3, 0.5, 0.7):
        expected = batched_nms(
            torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), threshold
        ).numpy()
        np.testing.assert_array_equal(nms(boxes, scores, threshold, classes), expected)


def test_nms_rejects_threshold_out_of_range() -> None:
    with pytest.raises(InvalidInputError, match="iou_threshold"):
        nms(np.zeros((1, 4), np.float32), np.ones(1, np.float32), 1.5)


def test_cxcywh_to_xyxy() -> None:
    out = cxcywh_to_xyxy(np.array([[10, 20, 4, 6]], np.float32))
    np.testing.assert_allclose(out, [[8, 17, 12, 23]])
