"""Drawing detections onto images for people to look at."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from cvops.detection.types import Detections

ImageArray = npt.NDArray[np.uint8]


def class_color(class_id: int) -> tuple[int, int, int]:
    """Return a stable, distinct BGR color for a class id (golden-ratio hue steps)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 179)
    bgr = cv2.cvtColor(np.array([[[hue, 200, 255]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw_detections(image: ImageArray, detections: Detections) -> ImageArray:
    """Return a copy of a BGR image with each box, its class name and score drawn on it."""
    canvas = image.copy()
    thickness = max(1, round(min(image.shape[:2]) / 300))
    font_scale = max(0.4, min(image.shape[:2]) / 900)
    for box, score, class_id, name in zip(
        detections.xyxy.astype(int).tolist(),
        detections.scores.tolist(),
        detections.class_ids.tolist(),
        detections.class_names,
        strict=True,
    ):
        color = class_color(class_id)
        cv2.rectangle(canvas, (box[0], box[1]), (box[2], box[3]), color, thickness, cv2.LINE_AA)
        label = f"{name} {score:.2f}"
        (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        top = max(box[1] - h - base, 0)
        left = max(min(box[0], canvas.shape[1] - w), 0)  # keep the label inside the image
        cv2.rectangle(canvas, (left, top), (left + w, top + h + base), color, -1)
        cv2.putText(
            canvas,
            label,
            (left, top + h),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (0, 0, 0),
            thickness,
            cv2.LINE_AA,
        )
    return canvas
