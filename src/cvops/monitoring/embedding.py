"""A cheap image embedding for drift tests: a normalised gray thumbnail plus colour histograms.

No learned model is needed, so it runs anywhere the frames do. The thumbnail (8x8 gray, each
image scaled to zero mean and unit norm) sees layout and scene changes independent of exposure;
the HSV histograms (8 bins each of hue, saturation and value, each summing to 1) see colour and
exposure changes. Both parts have norm ~1, so neither dominates a Euclidean kernel.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

THUMBNAIL_SIDE = 8
HISTOGRAM_BINS = 8
EMBEDDING_SIZE = THUMBNAIL_SIDE * THUMBNAIL_SIDE + 3 * HISTOGRAM_BINS
"""Length of :func:`image_embedding`'s vector (88)."""

# OpenCV's 8-bit HSV: hue in 0..179, saturation and value in 0..255.
_HSV_RANGES = ((0.0, 180.0), (0.0, 256.0), (0.0, 256.0))


def image_embedding(image_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Return the embedding of one BGR (H, W, 3) uint8 image, shape (88,), float32.

    Raises:
        ValueError: When the image is not (H, W, 3) uint8 with pixels.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.size == 0:
        raise ValueError(f"image_embedding: expected a (H, W, 3) uint8 image, got shape {image_bgr.shape}")
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    thumb = cv2.resize(gray, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), interpolation=cv2.INTER_AREA)
    centred = thumb.astype(np.float32).ravel()
    centred -= centred.mean()
    norm = float(np.linalg.norm(centred))
    values = (centred / norm if norm > 0 else centred).astype(np.float32)
    hsv = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2HSV)
    parts = [values]
    for channel, (low, high) in enumerate(_HSV_RANGES):
        hist, _ = np.histogram(hsv[:, :, channel], bins=HISTOGRAM_BINS, range=(low, high))
        parts.append((hist / max(hist.sum(), 1)).astype(np.float32))
    return np.concatenate(parts).astype(np.float32)
