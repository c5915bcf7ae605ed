"""ByteTrack plus what needs the frame's pixels: appearance embeddings and camera-motion compensation."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cvops.detection.types import Detections
from cvops.tracking.bytetrack import ByteTracker
from cvops.tracking.motion_compensation import SparseFlowCompensator
from cvops.tracking.reid import Embedder


class ImageTracker:
    """Tracks one camera's frames, given each frame's image along with its detections.

    With an ``embedder``, the high-score boxes that association would use an appearance for
    (see :meth:`ByteTracker.appearance_wanted`) are embedded and fused with motion; the others
    carry a zero embedding, which association ignores. With a ``compensator``, the tracks are moved
    by the camera's estimated motion before each frame is associated.
    """

    def __init__(
        self,
        tracker: ByteTracker | None = None,
        embedder: Embedder | None = None,
        compensator: SparseFlowCompensator | None = None,
        refresh_every: int = 10,
    ) -> None:
        """Wrap ``tracker`` (a default :class:`ByteTracker` when None)."""
        self.tracker = tracker or ByteTracker()
        self._embedder = embedder
        self._compensator = compensator
        self._refresh_every = refresh_every
        self.boxes_embedded = 0

    @property
    def active_tracks(self) -> int:
        """Return how many tracks are tracked or lost."""
        return self.tracker.active_tracks

    def update(self, detections: Detections, image_bgr: npt.NDArray[np.uint8]) -> Detections:
        """Associate one frame; return its detections with track ids (and embeddings when used)."""
        if self._compensator is not None:
            self.tracker.compensate(self._compensator.estimate(image_bgr, exclude_xyxy=detections.xyxy))
        if self._embedder is not None:
            wanted = self.tracker.appearance_wanted(detections, self._refresh_every)
            if wanted.any():
                found = self._embedder.embed(image_bgr, detections.xyxy[wanted])
                embeddings = np.zeros((len(detections), found.shape[1]), np.float32)
                embeddings[wanted] = found
                detections = detections.with_embeddings(embeddings)
                self.boxes_embedded += int(wanted.sum())
        return self.tracker.update(detections)
