"""Per-frame features: image statistics plus a summary of the frame's detections.

These are the numbers the Feast view ``frame_features`` (``feature_repo/views.py``) serves; the
column names here are its feature names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from cvops.detection.types import Detections
from cvops.errors import InvalidInputError
from cvops.features.image_stats import image_stats

# Scores are clipped this far from 0 and 1 so log2 stays finite (the entropy there is ~0 anyway).
_ENTROPY_EPS = 1e-7


@dataclass(frozen=True, slots=True)
class FrameFeatures:
    """The features of one processed frame of one camera.

    Attributes:
        camera_id: The camera (Feast entity ``camera``).
        frame_index: 0-based index of the frame in its source (Feast entity ``frame``).
        event_timestamp: When the frame was processed, timezone-aware UTC.
        brightness_gray: Mean gray level, 0..255.
        contrast_gray: Standard deviation of the gray levels (RMS contrast), 0..255.
        blur_laplacian_var: Variance of the Laplacian of the gray image; low means blurred.
        detection_count: Number of detections.
        score_mean: Mean detection score in [0, 1]; NaN when there are no detections.
        score_min: Lowest detection score in [0, 1]; NaN when there are no detections.
        score_entropy_bits: Mean binary entropy of the scores, see :func:`score_entropy_bits`.
        image_width_px: Frame width in pixels.
        image_height_px: Frame height in pixels.
        pts_s: The frame's presentation time in its stream, seconds; NaN when unknown.
    """

    camera_id: str
    frame_index: int
    event_timestamp: datetime
    brightness_gray: float
    contrast_gray: float
    blur_laplacian_var: float
    detection_count: int
    score_mean: float
    score_min: float
    score_entropy_bits: float
    image_width_px: int
    image_height_px: int
    pts_s: float

    def __post_init__(self) -> None:
        """Reject rows Feast could not key or order."""
        if not self.camera_id:
            raise InvalidInputError("camera_id: expected a non-empty string, got ''")
        if self.frame_index < 0:
            raise InvalidInputError(f"frame_index: expected >= 0, got {self.frame_index}")
        if self.event_timestamp.tzinfo is None:
            raise InvalidInputError(
                f"event_timestamp: expected a timezone-aware datetime, got naive {self.event_timestamp}"
            )


def score_entropy_bits(scores: npt.NDArray[np.float32]) -> float:
    """Return the mean binary entropy of detection scores, in bits (0..1).

    Each score ``p`` is read as the probability that its box is a true object, and contributes
    ``H(p) = -p log2(p) - (1 - p) log2(1 - p)``: 0 for a certain box (p = 0 or 1), 1 bit for
    p = 0.5. The frame's value is the mean over its boxes, and 0.0 for a frame without boxes
    (nothing uncertain was found). High values mark frames worth labeling.

    Args:
        scores: Scores in [0, 1], shape (N,).
    """
    if scores.size == 0:
        return 0.0
    return float(binary_entropy_bits(scores.astype(np.float64)).mean())


def binary_entropy_bits(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Return ``H(p)`` in bits for each yes/no probability in ``p``; exactly 0 at 0 and 1."""
    q = np.clip(p, _ENTROPY_EPS, 1.0 - _ENTROPY_EPS)
    bits = -(q * np.log2(q) + (1.0 - q) * np.log2(1.0 - q))
    result: npt.NDArray[np.float64] = np.where((p > 0.0) & (p < 1.0), bits, 0.0)
    return result


def frame_features(
    image: npt.NDArray[np.uint8],
    detections: Detections,
    camera_id: str,
    timestamp: datetime,
    *,
    frame_index: int = 0,
    pts_s: float | None = None,
) -> FrameFeatures:
    """Compute the features of one frame.

    Args:
        image: Pixels, shape (H, W, 3) BGR or (H, W) gray, uint8.
        detections: The frame's detections (after tracking or not: only scores are used).
        camera_id: The camera the frame came from.
        timestamp: When the frame was processed; timezone-aware (converted to UTC).
        frame_index: 0-based index of the frame in its source.
        pts_s: Presentation time in the stream, seconds; None when unknown.

    Raises:
        InvalidInputError: When the image is not (H, W[, 3]) uint8, or an id or time is invalid.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        dtype = getattr(image, "dtype", type(image).__name__)
        raise InvalidInputError(f"image: expected a uint8 numpy array, got {dtype}")
    if image.ndim == 3 and image.shape[2] != 3:
        raise InvalidInputError(f"image: expected shape (H, W, 3) or (H, W), got {image.shape}")
    try:
        stats = image_stats(image)
    except ValueError as error:
        raise InvalidInputError(str(error)) from error
    if timestamp.tzinfo is None:
        raise InvalidInputError(f"timestamp: expected a timezone-aware datetime, got naive {timestamp}")
    scores = detections.scores
    has_boxes = scores.size > 0
    return FrameFeatures(
        camera_id=camera_id,
        frame_index=frame_index,
        event_timestamp=timestamp.astimezone(UTC),
        brightness_gray=stats.brightness,
        contrast_gray=stats.contrast,
        blur_laplacian_var=stats.blur_laplacian_var,
        detection_count=int(scores.size),
        score_mean=float(scores.mean()) if has_boxes else math.nan,
        score_min=float(scores.min()) if has_boxes else math.nan,
        score_entropy_bits=score_entropy_bits(scores),
        image_width_px=int(image.shape[1]),
        image_height_px=int(image.shape[0]),
        pts_s=math.nan if pts_s is None else float(pts_s),
    )
