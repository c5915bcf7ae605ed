"""Perceptual hashes and near-duplicate grouping on real photos and hand-made hash tables."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cvops.active_learning.hashing import dhash, hamming_matrix, near_duplicates, phash
from cvops.errors import InvalidInputError
from cvops.images import read_image
from tests.conftest import fixture_path


def _noisy(image: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image.astype(np.float64) + rng.normal(0, 3, image.shape) + 5, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("hash_fn", [dhash, phash], ids=["dhash", "phash"])
def test_hash_is_stable_under_noise_resize_and_brightness_but_not_across_photos(hash_fn: object) -> None:
    assert callable(hash_fn)
    bus = read_image(fixture_path("images/bus.jpg"))
    zidane = read_image(fixture_path("images/zidane.jpg"))
    half = cv2.resize(bus, (bus.shape[1] // 2, bus.shape[0] // 2), interpolation=cv2.INTER_AREA)
    hashes = np.array([hash_fn(bus), hash_fn(_noisy(bus, 0)), hash_fn(half), hash_fn(zidane)], np.uint64)
    distances = hamming_matrix(hashes[:1], hashes)[0]
    assert distances[0] == 0
    assert distances[1] <= 6
    assert distances[2] <= 6
    assert distances[3] >= 16


def test_mirrored_photo_is_not_a_duplicate() -> None:
    bus = read_image(fixture_path("images/bus.jpg"))
    mirrored = np.ascontiguousarray(bus[:, ::-1])
    d = hamming_matrix(np.array([dhash(bus)]), np.array([dhash(mirrored)]))[0, 0]
    assert d > 6


def test_hamming_matrix_counts_differing_bits() -> None:
    a = np.array([0, 0b1011], np.uint64)
    b = np.array([0, 0b0001, np.iinfo(np.uint64).max], np.uint64)
    np.testing.assert_array_equal(hamming_matrix(a, b), [[0, 1, 64], [3, 2, 61]])


def test_hash_rejects_a_gray_image() -> None:
    with pytest.raises(InvalidInputError, match="expected a BGR array"):
        dhash(np.zeros((8, 8), np.uint8))


# Frames 0 and 2 are twins (1 bit apart in both hashes); frame 1 is far from both.
D = np.array([0b0, 0xFFFF_0000, 0b1], np.uint64)
P = np.array([0b0, 0xFFFF_0000, 0b10], np.uint64)


@pytest.mark.parametrize(
    ("order", "expected"),
    [([0, 1, 2], [-1, -1, 0]), ([2, 1, 0], [2, -1, -1]), ([1, 0, 2], [-1, -1, 0])],
    ids=["first-kept", "best-first-decides", "other-frame-first"],
)
def test_near_duplicates_keeps_the_first_of_each_group_in_priority_order(
    order: list[int], expected: list[int]
) -> None:
    result = near_duplicates(D, P, np.array(order, np.int64), max_distance=2)
    assert result.tolist() == expected


def test_near_duplicates_needs_both_hashes_close() -> None:
    far_phash = np.array([0b0, 0xFFFF_0000, 0xFF], np.uint64)
    result = near_duplicates(D, far_phash, np.arange(3, dtype=np.int64), max_distance=2)
    assert result.tolist() == [-1, -1, -1]


def test_near_duplicates_marks_twins_of_labeled_frames() -> None:
    result = near_duplicates(
        D,
        P,
        np.arange(3, dtype=np.int64),
        max_distance=2,
        reference_dhashes=np.array([0xFFFF_0001], np.uint64),
        reference_phashes=np.array([0xFFFF_0000], np.uint64),
    )
    assert result.tolist() == [-1, -2, 0]


@pytest.mark.parametrize(
    ("order", "bits", "message"),
    [([0, 1], 2, "permutation"), ([0, 1, 2], 65, "max_distance")],
    ids=["short-order", "too-many-bits"],
)
def test_near_duplicates_rejects_bad_arguments(order: list[int], bits: int, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        near_duplicates(D, P, np.array(order, np.int64), max_distance=bits)
