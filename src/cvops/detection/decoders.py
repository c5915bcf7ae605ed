"""Raw model output -> candidate boxes in model-input pixels, one decoder per model family.

The family comes from the package's ``model.json``; nothing here guesses it from the graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from cvops.detection.ops import cxcywh_to_xyxy
from cvops.errors import ModelPackageError

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Candidates:
    """Scored boxes of one image before NMS, in model-input pixels.

    Attributes:
        xyxy: Boxes, shape (K, 4), float32.
        scores: Best class score of each box, shape (K,), float32.
        class_ids: Best class of each box, shape (K,), int64.
        class_scores: Every class's score of each box as the head gives it, shape (K, C), float32;
            None when the export keeps only one class per box (RT-DETR).
    """

    xyxy: FloatArray
    scores: FloatArray
    class_ids: IntArray
    class_scores: FloatArray | None = None


class Decoder(Protocol):
    """Turns one batch of raw outputs into per-image candidates above a score threshold."""

    @property
    def needs_nms(self) -> bool:
        """Return whether boxes still need non-maximum suppression."""
        ...

    def __call__(self, output: FloatArray, score_threshold: float) -> list[Candidates]:
        """Decode ``output`` (the model's first output for a batch)."""
        ...


def _best_class(
    class_scores: FloatArray, score_threshold: float
) -> tuple[IntArray, FloatArray, IntArray, FloatArray]:
    """Pick each anchor's best class; return kept anchor indices, their scores, classes and class scores.

    ``class_scores`` has shape (C, A): classes first so the max runs over contiguous rows. Only
    the kept anchors are sliced (the serving path); their class scores come back as (K, C) float32.
    """
    best = class_scores.max(axis=0)
    kept = np.flatnonzero(best > score_threshold)
    kept_scores = class_scores[:, kept]
    class_ids = kept_scores.argmax(axis=0).astype(np.int64)
    return kept, best[kept].astype(np.float32), class_ids, kept_scores.T.astype(np.float32, copy=False)


@dataclass(frozen=True, slots=True)
class UltralyticsYoloDecoder:
    """YOLOv8 / YOLO11 export: (B, 4 + C, A), boxes cx, cy, w, h in input pixels, class scores."""

    num_classes: int
    needs_nms: bool = True

    def __call__(self, output: FloatArray, score_threshold: float) -> list[Candidates]:
        """Decode a batch of raw outputs."""
        _check_shape(output, 1, 4 + self.num_classes, "yolov8/yolo11 (B, 4+C, A)")
        result = []
        for image_output in output:
            kept, scores, class_ids, class_scores = _best_class(image_output[4:], score_threshold)
            boxes = cxcywh_to_xyxy(np.ascontiguousarray(image_output[:4, kept].T))
            result.append(Candidates(boxes, scores, class_ids, class_scores))
        return result


@dataclass(frozen=True, slots=True)
class RtDetrDecoder:
    """RT-DETR export (Ultralytics 8.4): (B, Q, 6) top-Q queries, already one class each.

    Each row is ``cx, cy, w, h`` normalized to 0..1, then score, then class index (as float).
    The queries do not overlap by construction, so no NMS is needed. The export already reduced
    each query to one class, so the candidates carry no per-class scores.
    """

    num_classes: int
    input_height: int
    input_width: int
    needs_nms: bool = False

    def __call__(self, output: FloatArray, score_threshold: float) -> list[Candidates]:
        """Decode a batch of raw outputs."""
        _check_shape(output, 2, 6, "rtdetr (B, Q, 6)")
        scale = np.array([self.input_width, self.input_height] * 2, np.float32)
        result = []
        for image_output in output:
            kept = image_output[:, 4] > score_threshold
            class_ids = image_output[kept, 5].round().astype(np.int64)
            if class_ids.size and (class_ids.min() < 0 or class_ids.max() >= self.num_classes):
                raise ModelPackageError(
                    f"rtdetr output: expected class indices in [0, {self.num_classes}), "
                    f"got [{class_ids.min()}, {class_ids.max()}]"
                )
            boxes = cxcywh_to_xyxy(image_output[kept, :4] * scale)
            result.append(Candidates(boxes, image_output[kept, 4].astype(np.float32), class_ids))
        return result


class YoloxDecoder:
    """YOLOX export without in-graph decode: (B, A, 5 + C) with raw box offsets.

    Boxes are ``(xy + grid) * stride`` and ``exp(wh) * stride`` over strides 8, 16, 32;
    the score is objectness times the class score (both already through a sigmoid), and each
    box's class scores are that same product for every class.
    """

    needs_nms = True

    def __init__(self, num_classes: int, input_height: int, input_width: int) -> None:
        """Precompute the anchor grid for one input size."""
        self.num_classes = num_classes
        grids, strides = [], []
        for stride in (8, 16, 32):
            rows, cols = input_height // stride, input_width // stride
            ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
            grids.append(np.stack([xs, ys], axis=-1).reshape(-1, 2))
            strides.append(np.full((rows * cols, 1), stride))
        self._grid = np.concatenate(grids).astype(np.float32)
        self._stride = np.concatenate(strides).astype(np.float32)

    def __call__(self, output: FloatArray, score_threshold: float) -> list[Candidates]:
        """Decode a batch of raw outputs."""
        _check_shape(output, 2, 5 + self.num_classes, "yolox (B, A, 5+C)")
        if output.shape[1] != len(self._grid):
            raise ModelPackageError(
                f"yolox output: expected {len(self._grid)} anchors for the package input size, "
                f"got {output.shape[1]}"
            )
        result = []
        for image_output in output:
            class_scores = (image_output[:, 5:] * image_output[:, 4:5]).T
            kept, scores, class_ids, kept_class_scores = _best_class(class_scores, score_threshold)
            raw = image_output[kept]
            stride = self._stride[kept]
            centers = (raw[:, :2] + self._grid[kept]) * stride
            sizes = np.exp(raw[:, 2:4]) * stride
            boxes = cxcywh_to_xyxy(np.concatenate([centers, sizes], axis=1).astype(np.float32))
            result.append(Candidates(boxes, scores, class_ids, kept_class_scores))
        return result


def make_decoder(family: str, num_classes: int, input_height: int, input_width: int) -> Decoder:
    """Return the decoder of a detector family named in ``model.json``.

    Raises:
        ModelPackageError: When the family has no detection decoder.
    """
    if family in ("yolov8", "yolo11"):
        return UltralyticsYoloDecoder(num_classes)
    if family == "rtdetr":
        return RtDetrDecoder(num_classes, input_height, input_width)
    if family == "yolox":
        return YoloxDecoder(num_classes, input_height, input_width)
    raise ModelPackageError(f"family: expected a detector family, got {family!r}")


def _check_shape(output: FloatArray, axis: int, size: int, expected: str) -> None:
    if output.ndim != 3 or output.shape[axis] != size:
        raise ModelPackageError(
            f"model output: expected {expected}, size {size} on axis {axis}, got {output.shape}"
        )
