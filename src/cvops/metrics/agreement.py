"""How much two detectors agree on the same images (parity checks, A/B comparisons)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cvops.detection.ops import box_iou
from cvops.detection.types import Detections


@dataclass(frozen=True, slots=True)
class Matches:
    """Pairs of same-class boxes matched greedily by IoU.

    Attributes:
        a_index: Index of each matched box in the first record, shape (M,).
        b_index: Index of its partner in the second record, shape (M,).
        iou: IoU of each pair, shape (M,).
    """

    a_index: npt.NDArray[np.int64]
    b_index: npt.NDArray[np.int64]
    iou: npt.NDArray[np.float32]


def match_detections(
    a: Detections, b: Detections, iou_threshold: float = 0.5, class_aware: bool = True
) -> Matches:
    """Match boxes of ``a`` to boxes of ``b``, highest IoU first.

    Each box is used at most once; pairs with IoU below ``iou_threshold`` are not matched. With
    ``class_aware`` only boxes of the same class id match (ids must share one vocabulary).
    """
    iou = box_iou(a.xyxy, b.xyxy)
    if class_aware:
        iou[a.class_ids[:, None] != b.class_ids[None, :]] = 0.0
    a_index: list[int] = []
    b_index: list[int] = []
    values: list[float] = []
    if iou.size:
        for flat in np.argsort(-iou, axis=None, kind="stable"):
            i, j = divmod(int(flat), iou.shape[1])
            if iou[i, j] < iou_threshold:
                break
            if i in a_index or j in b_index:
                continue
            a_index.append(i)
            b_index.append(j)
            values.append(float(iou[i, j]))
    return Matches(
        np.asarray(a_index, np.int64), np.asarray(b_index, np.int64), np.asarray(values, np.float32)
    )
