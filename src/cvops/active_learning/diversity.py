"""Frame descriptors and diversity-driven picking (k-center greedy, the core-set heuristic).

The descriptor is a normalized 8x8 CIELAB thumbnail (layout and colour of the scene) beside a
hue-saturation histogram (what colours are present, wherever they are). It is a fair choice
here because it is cheap (well under a millisecond a frame), needs no weights or download, and
the frames we pick from are mostly from fixed cameras, where what differs between frames is
layout, lighting and colour of what passes. It knows no semantics: two scenes with the same
colours and layout but different objects look alike to it, so it serves diversity, never
classification. A learned embedding (pooled backbone features) would plug in unchanged.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from cvops.errors import InvalidInputError

ImageArray = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]

THUMBNAIL_SIDE = 8
HUE_BINS = 8
SATURATION_BINS = 4
_BLOCK = 1024
DESCRIPTOR_SIZE = THUMBNAIL_SIDE * THUMBNAIL_SIDE * 3 + HUE_BINS * SATURATION_BINS


def frame_descriptor(image: ImageArray) -> FloatArray:
    """Return a unit-length descriptor of a BGR image, shape (DESCRIPTOR_SIZE,), float32.

    Its two halves (thumbnail, histogram) are each scaled to length ``1/sqrt(2)``, so Euclidean
    distances lie in 0..2 and both halves weigh the same.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise InvalidInputError(f"image: expected a BGR array (H, W, 3), got shape {image.shape}")
    small = cv2.resize(image, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), interpolation=cv2.INTER_AREA)
    lab: FloatArray = np.asarray(cv2.cvtColor(small, cv2.COLOR_BGR2LAB), dtype=np.float32).reshape(-1)
    lab = lab - lab.mean()
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    counts = cv2.calcHist([hsv], [0, 1], None, [HUE_BINS, SATURATION_BINS], [0, 180, 0, 256])
    # Square roots (Hellinger) keep one large flat area from drowning the other colours.
    histogram: FloatArray = np.sqrt(np.asarray(counts, dtype=np.float32).reshape(-1))
    parts = [_unit(lab), _unit(histogram)]
    return (np.concatenate(parts) / np.float32(np.sqrt(2.0))).astype(np.float32)


def _unit(vector: FloatArray) -> FloatArray:
    norm = float(np.linalg.norm(vector))
    return vector if norm == 0.0 else (vector / norm).astype(np.float32)


def _nearest_distances(points: FloatArray, centers: FloatArray) -> npt.NDArray[np.float64]:
    """Distance of each point (N, D) to its nearest center (M, D); +inf where M == 0.

    Works through blocks of centers so memory stays at (N x block) for any M.
    """
    nearest = np.full(len(points), np.inf)
    if len(centers) == 0:
        return nearest
    a = points.astype(np.float64)
    a_squared = (a**2).sum(1)[:, None]
    for start in range(0, len(centers), _BLOCK):
        b = centers[start : start + _BLOCK].astype(np.float64)
        squared = a_squared - 2.0 * a @ b.T + (b**2).sum(1)[None, :]
        nearest = np.minimum(nearest, np.sqrt(np.maximum(squared, 0.0)).min(axis=1))
    return nearest


def greedy_pick(
    descriptors: FloatArray,
    budget: int,
    labeled: FloatArray | None = None,
    seed: int = 0,
    start: int | None = None,
) -> tuple[list[int], list[float]]:
    """Pick up to ``budget`` frames, each time the one farthest from everything chosen so far.

    This is k-center greedy (Sener and Savarese, "Active Learning for Convolutional Neural
    Networks: A Core-Set Approach", 2018).

    Args:
        descriptors: Pool descriptors, shape (N, D).
        budget: Frames to pick, >= 1 (fewer when the pool is smaller).
        labeled: Descriptors of frames already labeled, shape (M, D): they count as chosen.
        seed: Picks the first frame when nothing is labeled and no ``start`` is given.
        start: Index of the first pick when nothing is labeled (default: a seeded random one).

    Returns:
        The picked pool indices in pick order, and each one's distance to the nearest frame
        chosen before it (0..2; +inf for the very first pick when nothing was labeled).
    """
    if budget < 1:
        raise InvalidInputError(f"budget: expected >= 1, got {budget}")
    n = len(descriptors)
    if start is not None and not 0 <= start < n:
        raise InvalidInputError(f"start: expected an index in [0, {n}), got {start}")
    points = descriptors.astype(np.float64)
    nearest = _nearest_distances(descriptors, labeled if labeled is not None else descriptors[:0])
    picked: list[int] = []
    distances: list[float] = []
    available = np.ones(n, bool)
    for _ in range(min(budget, n)):
        if np.isinf(nearest).all():
            # Nothing chosen yet: start where asked, or at a seeded random frame.
            index = start if start is not None else int(np.random.default_rng(seed).integers(n))
        else:
            gain = np.where(available, nearest, -1.0)
            index = int(np.argmax(gain))
        picked.append(index)
        distances.append(float(nearest[index]))
        available[index] = False
        step = np.sqrt(((points - points[index]) ** 2).sum(axis=1))
        nearest = np.minimum(nearest, step)
    return picked, distances
