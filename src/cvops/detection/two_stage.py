"""Detect, then classify each box's crop with a second model (e.g. vehicle -> make)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from cvops.config import DetectorSettings
from cvops.detection.detector import Classifier, Detector
from cvops.detection.types import Detections

ImageArray = npt.NDArray[np.uint8]


def crop_boxes(image: ImageArray, xyxy: npt.NDArray[np.float32], min_side_px: int = 2) -> list[ImageArray]:
    """Cut each box (N, 4), in pixels, out of a BGR image; boxes are clipped to the image.

    A box thinner than ``min_side_px`` is widened around its center to that size.
    """
    height, width = image.shape[:2]
    crops = []
    for x1, y1, x2, y2 in xyxy.tolist():
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        half_w, half_h = max(x2 - x1, min_side_px) / 2, max(y2 - y1, min_side_px) / 2
        left, right = int(max(cx - half_w, 0)), int(min(cx + half_w, width))
        top, bottom = int(max(cy - half_h, 0)), int(min(cy + half_h, height))
        crops.append(image[top : max(bottom, top + 1), left : max(right, left + 1)])
    return crops


class DetectThenClassify:
    """A Detector whose boxes of chosen classes are relabeled by a crop classifier.

    Class ids index one combined vocabulary: the detector's names first, then the
    classifier's, so a relabeled box has id ``len(detector names) + classifier id``. Its score
    is the detector score times the classifier's probability.
    """

    def __init__(
        self, detector: Detector, classifier: Classifier, classify_names: frozenset[str] | None = None
    ) -> None:
        """Compose ``detector`` and ``classifier``.

        Args:
            detector: The first stage.
            classifier: The second stage, run on crops.
            classify_names: Detector classes whose boxes are classified; None means all.
        """
        self.detector = detector
        self.classifier = classifier
        self.classify_names = classify_names
        self._offset = len(detector.class_names)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Return the combined vocabulary: detector names, then classifier names."""
        return self.detector.class_names + self.classifier.class_names

    def detect(
        self, images: Sequence[ImageArray], settings: DetectorSettings | None = None
    ) -> list[Detections]:
        """Detect in each BGR image, then classify the crops of the chosen boxes."""
        results = []
        for image, detections in zip(images, self.detector.detect(images, settings), strict=True):
            chosen = np.array(
                [self.classify_names is None or n in self.classify_names for n in detections.class_names],
                dtype=bool,
            )
            if not chosen.any():
                results.append(detections)
                continue
            probabilities = self.classifier.classify(crop_boxes(image, detections.xyxy[chosen]))
            class_ids = detections.class_ids.copy()
            scores = detections.scores.copy()
            class_ids[chosen] = probabilities.argmax(axis=1) + self._offset
            scores[chosen] *= probabilities.max(axis=1)
            names = tuple(self.class_names[i] for i in class_ids.tolist())
            results.append(replace(detections, scores=scores, class_ids=class_ids, class_names=names))
        return results
