"""The tracker plug-in protocols: boxes only, or boxes with the frame's image."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from cvops.detection.types import Detections


class Tracker(Protocol):
    """Assigns track ids to the detections of consecutive frames of one stream."""

    def update(self, detections: Detections) -> Detections:
        """Return ``detections`` with ``track_ids`` set (-1 for boxes not yet confirmed)."""
        ...


class FrameTracker(Protocol):
    """Assigns track ids given each frame's detections and its image (for appearance, camera motion)."""

    def update(self, detections: Detections, image_bgr: npt.NDArray[np.uint8]) -> Detections:
        """Return ``detections`` with ``track_ids`` set (-1 for boxes not yet confirmed)."""
        ...
