"""The Tracker plug-in protocol."""

from __future__ import annotations

from typing import Protocol

from cvops.detection.types import Detections


class Tracker(Protocol):
    """Assigns track ids to the detections of consecutive frames of one stream."""

    def update(self, detections: Detections) -> Detections:
        """Return ``detections`` with ``track_ids`` set (-1 for boxes not yet confirmed)."""
        ...
