"""Perceptual hashes (dHash, pHash) and near-duplicate grouping of frames.

Consecutive video frames are often near-identical: labeling both costs twice and teaches once.
Both hashes are 64 bits computed with OpenCV on a grayscale thumbnail, so they ignore small
noise, compression and brightness shifts but change when objects move by a few percent.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from cvops.errors import InvalidInputError

ImageArray = npt.NDArray[np.uint8]
HashArray = npt.NDArray[np.uint64]

HASH_BITS = 64
_BLOCK = 2048
_WEIGHTS = (1 << np.arange(HASH_BITS, dtype=np.uint64)).astype(np.uint64)


def _pack(bits: npt.NDArray[np.bool_]) -> np.uint64:
    return np.uint64(np.sum(_WEIGHTS[bits.reshape(-1)], dtype=np.uint64))


def _gray(image: ImageArray) -> ImageArray:
    if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise InvalidInputError(f"image: expected a BGR array (H, W, 3), got shape {image.shape}")
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)


def dhash(image: ImageArray) -> np.uint64:
    """Return the 64-bit difference hash of a BGR image: is each pixel brighter than its right neighbour.

    Computed on a 9x8 grayscale thumbnail (area interpolation).
    """
    small = cv2.resize(_gray(image), (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    return _pack(small[:, 1:] > small[:, :-1])


def phash(image: ImageArray) -> np.uint64:
    """Return the 64-bit perceptual hash of a BGR image: the sign of its low DCT frequencies.

    The 8x8 lowest frequencies of a 32x32 grayscale thumbnail's DCT, compared with their median
    (the DC term left out of the median, as it only carries the mean brightness).
    """
    small = cv2.resize(_gray(image), (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = np.asarray(cv2.dct(small)[:8, :8], dtype=np.float32)
    median = float(np.median(low.reshape(-1)[1:]))
    return _pack(low > median)


def hamming_matrix(a: HashArray, b: HashArray) -> npt.NDArray[np.int64]:
    """Return the Hamming distance of every pair of hashes, shape (len(a), len(b)), in bits."""
    distances: npt.NDArray[np.int64] = np.bitwise_count(a[:, None] ^ b[None, :]).astype(np.int64)
    return distances


def near_duplicates(
    dhashes: HashArray,
    phashes: HashArray,
    order: npt.NDArray[np.int64],
    max_distance: int = 6,
    reference_dhashes: HashArray | None = None,
    reference_phashes: HashArray | None = None,
) -> npt.NDArray[np.int64]:
    """Return, for each frame, the index of the frame it duplicates, or -1 when it is kept.

    Two frames are near-duplicates when BOTH their dHash and pHash differ in at most
    ``max_distance`` bits (requiring both keeps distinct scenes that share one hash apart).
    Frames are visited in ``order`` (best first): a frame is kept unless it duplicates an
    already kept frame. Frames that duplicate a reference frame (already labeled) get -2.

    Args:
        dhashes: dHash of each pool frame, shape (N,).
        phashes: pHash of each pool frame, shape (N,).
        order: Visiting order, a permutation of ``range(N)``: the first of a group is kept.
        max_distance: Largest Hamming distance, in bits of 64, still called a duplicate.
        reference_dhashes: dHash of frames already labeled, shape (M,), or None.
        reference_phashes: pHash of the same frames, shape (M,).
    """
    if not 0 <= max_distance <= HASH_BITS:
        raise InvalidInputError(f"max_distance: expected 0..{HASH_BITS} bits, got {max_distance}")
    n = len(dhashes)
    if sorted(order.tolist()) != list(range(n)):
        raise InvalidInputError(f"order: expected a permutation of range({n})")
    duplicate_of = np.full(n, -1, np.int64)
    if reference_dhashes is not None and reference_phashes is not None and len(reference_dhashes):
        # Row blocks keep memory at (block x M) whatever the pool and labeled sizes.
        for start in range(0, n, _BLOCK):
            rows = slice(start, start + _BLOCK)
            to_reference = (hamming_matrix(dhashes[rows], reference_dhashes) <= max_distance) & (
                hamming_matrix(phashes[rows], reference_phashes) <= max_distance
            )
            duplicate_of[rows][to_reference.any(axis=1)] = -2
    kept_index = np.empty(n, np.int64)
    kept_dhashes = np.empty(n, np.uint64)
    kept_phashes = np.empty(n, np.uint64)
    kept = 0
    for index in order.tolist():
        if duplicate_of[index] == -2:
            continue
        if kept:
            close = (np.bitwise_count(kept_dhashes[:kept] ^ dhashes[index]) <= max_distance) & (
                np.bitwise_count(kept_phashes[:kept] ^ phashes[index]) <= max_distance
            )
            twins = np.flatnonzero(close)
            if twins.size:
                duplicate_of[index] = kept_index[twins[0]]
                continue
        kept_index[kept], kept_dhashes[kept], kept_phashes[kept] = index, dhashes[index], phashes[index]
        kept += 1
    return duplicate_of
