"""The Detector and Classifier plug-in protocols."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from cvops.config import DetectorSettings
from cvops.detection.types import Detections

ImageArray = npt.NDArray[np.uint8]


class Detector(Protocol):
    """Anything that turns BGR images into detections in original-image pixels."""

    @property
    def class_names(self) -> tuple[str, ...]:
        """Return the class names, indexed by class id."""
        ...

    def detect(
        self, images: Sequence[ImageArray], settings: DetectorSettings | None = None
    ) -> list[Detections]:
        """Detect objects in a batch of BGR images, each (H, W, 3) uint8, any sizes.

        ``settings`` overrides the detector's own thresholds for this call.
        """
        ...


class Classifier(Protocol):
    """Anything that turns BGR images into class probabilities."""

    @property
    def class_names(self) -> tuple[str, ...]:
        """Return the class names, indexed by class id."""
        ...

    def classify(self, images: Sequence[ImageArray]) -> npt.NDArray[np.float32]:
        """Return class probabilities, shape (N, C), for BGR images (H, W, 3) uint8."""
        ...
