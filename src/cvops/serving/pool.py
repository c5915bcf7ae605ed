"""Several instances of one detector (one per GPU) behind one endpoint, least-loaded first."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from cvops.config import DetectorSettings
from cvops.detection.detector import Detector
from cvops.detection.types import Detections
from cvops.errors import InvalidInputError


class DetectorPool:
    """A Detector that sends each call to the instance with the fewest calls in progress."""

    def __init__(self, detectors: Sequence[Detector]) -> None:
        """Pool ``detectors`` (same model, e.g. one per GPU)."""
        if not detectors:
            raise InvalidInputError("detectors: expected at least one instance, got none")
        self.detectors = list(detectors)
        self.busy = [0] * len(self.detectors)
        self.calls = [0] * len(self.detectors)
        self._lock = threading.Lock()

    @property
    def class_names(self) -> tuple[str, ...]:
        """Return the class names, indexed by class id."""
        return self.detectors[0].class_names

    def detect(
        self, images: Sequence[npt.NDArray[np.uint8]], settings: DetectorSettings | None = None
    ) -> list[Detections]:
        """Detect with the least-loaded instance (ties: the lowest index)."""
        with self._lock:
            index = self.busy.index(min(self.busy))
            self.busy[index] += 1
            self.calls[index] += 1
        try:
            return self.detectors[index].detect(images, settings)
        finally:
            with self._lock:
                self.busy[index] -= 1
