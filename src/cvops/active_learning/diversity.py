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
TYPICALITY_NEIGHBORS = 3
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


def _distances(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Euclidean distances between rows of ``a`` (N, D) and ``b`` (M, D), shape (N, M)."""
    squared = (a**2).sum(1)[:, None] - 2.0 * a @ b.T + (b**2).sum(1)[None, :]
    distances: npt.NDArray[np.float64] = np.sqrt(np.maximum(squared, 0.0))
    return distances


def _nearest_distances(points: FloatArray, centers: FloatArray) -> npt.NDArray[np.float64]:
    """Distance of each point (N, D) to its nearest center (M, D); +inf where M == 0.

    Works through blocks of centers so memory stays at (N x block) for any M.
    """
    nearest = np.full(len(points), np.inf)
    a = points.astype(np.float64)
    for start in range(0, len(centers), _BLOCK):
        b = centers[start : start + _BLOCK].astype(np.float64)
        nearest = np.minimum(nearest, _distances(a, b).min(axis=1))
    return nearest


def typicality(descriptors: FloatArray, neighbors: int = TYPICALITY_NEIGHBORS) -> npt.NDArray[np.float64]:
    """Return each frame's typicality in (0, 1]: how densely other frames surround it.

    A frame's spread is its mean distance to its ``neighbors`` nearest other frames; typicality is
    the pool's median spread divided by the frame's, capped at 1. Frames as dense as most of the
    pool weigh 1; a one-off frame unlike anything else (a photo from elsewhere, a glitch) weighs
    little, however far it is from the labeled set (Hacohen et al., "Active Learning on a Budget:
    Opposite Strategies Suit High and Low Budgets", 2022, pick typical frames the same way).
    Works through blocks of rows so memory stays at (block x N).
    """
    n = len(descriptors)
    if n < 2:
        return np.ones(n)
    k = min(neighbors, n - 1)
    points = descriptors.astype(np.float64)
    spread = np.empty(n)
    for start in range(0, n, _BLOCK):
        block = _distances(points[start : start + _BLOCK], points)
        # The k + 1 smallest include the frame itself (distance 0).
        nearest = np.partition(block, k, axis=1)[:, : k + 1]
        spread[start : start + len(block)] = nearest.sum(axis=1) / k
    median = float(np.median(spread))
    result: npt.NDArray[np.float64] = np.where(spread <= median, 1.0, median / np.maximum(spread, 1e-12))
    return result


def greedy_pick(
    descriptors: FloatArray,
    budget: int,
    labeled: FloatArray | None = None,
    seed: int = 0,
    start: int | None = None,
    weights: npt.NDArray[np.float64] | None = None,
) -> tuple[list[int], list[float]]:
    """Pick up to ``budget`` frames, each time the one farthest from everything chosen so far.

    This is k-center greedy (Sener and Savarese, "Active Learning for Convolutional Neural
    Networks: A Core-Set Approach", 2018). With ``weights`` each step maximizes
    ``weight * distance`` instead (e.g. :func:`typicality`, so a far but one-off frame loses to
    a far frame that stands for many).

    Args:
        descriptors: Pool descriptors, shape (N, D).
        budget: Frames to pick, >= 1 (fewer when the pool is smaller).
        labeled: Descriptors of frames already labeled, shape (M, D): they count as chosen.
        seed: Picks the first frame when nothing is labeled and no ``start`` is given.
        start: Index of the first pick when nothing is labeled (default: a seeded random one).
        weights: Optional weight of each pool frame, shape (N,), >= 0.

    Returns:
        The picked pool indices in pick order, and each one's distance to the nearest frame
        chosen before it (0..2; +inf for the very first pick when nothing was labeled).
    """
    if budget < 1:
        raise InvalidInputError(f"budget: expected >= 1, got {budget}")
    n = len(descriptors)
    if start is not None and not 0 <= start < n:
        raise InvalidInputError(f"start: expected an index in [0, {n}), got {start}")
    if weights is not None and (weights.shape != (n,) or (weights < 0).any()):
        raise InvalidInputError(f"weights: expected shape ({n},) with values >= 0, got {weights.shape}")
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
            gain = np.where(available, nearest if weights is None else weights * nearest, -1.0)
            index = int(np.argmax(gain))
        picked.append(index)
        distances.append(float(nearest[index]))
        available[index] = False
        step = np.sqrt(((points - points[index]) ** 2).sum(axis=1))
        nearest = np.minimum(nearest, step)
    return picked, distances
