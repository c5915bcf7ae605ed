"""A greedy IoU tracker: the simplest tracker that keeps ids across frames.

Boxes of the same class are matched to the previous boxes of live tracks by IoU; an unmatched
box starts a new track; a track unseen for ``max_age`` frames ends. Ids count per instance, so
many streams can be tracked in one process without sharing a counter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cvops.detection.ops import box_iou
from cvops.detection.types import Detections
from cvops.errors import InvalidInputError


@dataclass(slots=True)
class _Track:
    track_id: int
    class_id: int
    xyxy: npt.NDArray[np.float32]
    frames_unseen: int = 0


@dataclass(slots=True)
class IouTracker:
    """Greedy IoU association frame to frame.

    Attributes:
        iou_threshold: Minimum IoU between a track's last box and a new box to continue it.
        max_age: Frames a track may go unseen before it ends.
    """

    iou_threshold: float = 0.3
    max_age: int = 30
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 1

    def __post_init__(self) -> None:
        """Reject out-of-range settings."""
        if not 0.0 < self.iou_threshold <= 1.0:
            raise InvalidInputError(f"iou_threshold: expected a value in (0, 1], got {self.iou_threshold}")
        if self.max_age < 0:
            raise InvalidInputError(f"max_age: expected >= 0, got {self.max_age}")

    @property
    def active_tracks(self) -> int:
        """Return how many tracks are alive."""
        return len(self._tracks)

    def update(self, detections: Detections) -> Detections:
        """Continue or start a track for each detection; return them with ``track_ids``."""
        ids = np.full(len(detections), -1, np.int64)
        matched_tracks: set[int] = set()
        if self._tracks and len(detections):
            previous = np.stack([t.xyxy for t in self._tracks]).astype(np.float32)
            iou = box_iou(previous, detections.xyxy)
            classes = np.array([t.class_id for t in self._tracks])
            iou[classes[:, None] != detections.class_ids[None, :]] = 0.0
            for flat in np.argsort(-iou, axis=None, kind="stable"):
                t, d = divmod(int(flat), iou.shape[1])
                if iou[t, d] < self.iou_threshold:
                    break
                if t in matched_tracks or ids[d] != -1:
                    continue
                matched_tracks.add(t)
                ids[d] = self._tracks[t].track_id
                self._tracks[t].xyxy = detections.xyxy[d].copy()
                self._tracks[t].frames_unseen = 0
        for t, track in enumerate(self._tracks):
            if t not in matched_tracks:
                track.frames_unseen += 1
        self._tracks = [t for t in self._tracks if t.frames_unseen <= self.max_age]
        for d in np.flatnonzero(ids == -1).tolist():
            ids[d] = self._next_id
            self._tracks.append(
                _Track(self._next_id, int(detections.class_ids[d]), detections.xyxy[d].copy())
            )
            self._next_id += 1
        return detections.with_track_ids(ids)
