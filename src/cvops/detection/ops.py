"""Box operations on xyxy pixel boxes: IoU and class-aware non-maximum suppression."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cvops.errors import InvalidInputError

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

# Offsetting boxes by class id makes one NMS pass class-aware; larger than any image side.
_CLASS_OFFSET_PX = 8192.0


def box_area(xyxy: FloatArray) -> FloatArray:
    """Return the area of each box, shape (N,), for ``xyxy`` of shape (N, 4)."""
    area: FloatArray = np.maximum(xyxy[:, 2] - xyxy[:, 0], 0) * np.maximum(xyxy[:, 3] - xyxy[:, 1], 0)
    return area


def box_iou(a_xyxy: FloatArray, b_xyxy: FloatArray) -> FloatArray:
    """Return the pairwise IoU matrix, shape (N, M), of boxes (N, 4) and (M, 4)."""
    # Column by column rather than on (N, M, 2) blocks: trackers call this every frame.
    a, b = a_xyxy.astype(np.float32, copy=False), b_xyxy.astype(np.float32, copy=False)
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(width, 0, out=width) * np.maximum(height, 0, out=height)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    # Where the union is empty the intersection is too, so the ratio is 0.
    iou: FloatArray = inter / np.maximum(union, np.float32(1e-12))
    return iou


def nms(
    xyxy: FloatArray,
    scores: FloatArray,
    iou_threshold: float,
    class_ids: IntArray | None = None,
    max_det: int | None = None,
) -> IntArray:
    """Greedy non-maximum suppression.

    Args:
        xyxy: Boxes, shape (N, 4), pixels.
        scores: Scores, shape (N,).
        iou_threshold: A box is dropped when its IoU with a kept, higher-scoring box is above this.
        class_ids: When given, shape (N,): boxes only suppress boxes of the same class.
        max_det: Keep at most this many boxes.

    Returns:
        Indices of the kept boxes, highest score first, int64.
    """
    if not 0.0 <= iou_threshold <= 1.0:
        raise InvalidInputError(f"iou_threshold: expected a value in [0, 1], got {iou_threshold}")
    boxes = xyxy
    if class_ids is not None and len(class_ids):
        boxes = xyxy + (class_ids.astype(np.float32) * _CLASS_OFFSET_PX)[:, None]
    order = np.argsort(-scores, kind="stable")
    areas = box_area(boxes)
    limit = len(order) if max_det is None else max_det
    keep: list[int] = []
    while order.size and len(keep) < limit:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        top_left = np.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        wh = (bottom_right - top_left).clip(0)
        inter = wh[:, 0] * wh[:, 1]
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def cxcywh_to_xyxy(cxcywh: FloatArray) -> FloatArray:
    """Convert boxes (N, 4) from center x, center y, width, height to x1, y1, x2, y2."""
    half = cxcywh[:, 2:4] * 0.5
    return np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)
