"""Frame descriptors and greedy diverse picking (k-center greedy)."""

from __future__ import annotations

import numpy as np
import pytest

from cvops.active_learning.diversity import DESCRIPTOR_SIZE, frame_descriptor, greedy_pick, typicality
from cvops.errors import InvalidInputError
from cvops.images import read_image
from tests.conftest import fixture_path

# Points on a line (1-D descriptors): two tight clusters and one outlier.
POINTS = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [9.0]], np.float32)


def test_descriptor_has_unit_length_and_tells_photos_apart_more_than_noise() -> None:
    bus = read_image(fixture_path("images/bus.jpg"))
    zidane = read_image(fixture_path("images/zidane.jpg"))
    rng = np.random.default_rng(0)
    noisy = np.clip(bus + rng.normal(0, 3, bus.shape), 0, 255).astype(np.uint8)
    a, b, c = frame_descriptor(bus), frame_descriptor(noisy), frame_descriptor(zidane)
    assert a.shape == (DESCRIPTOR_SIZE,)
    assert a.dtype == np.float32
    assert float(np.linalg.norm(a)) == pytest.approx(1.0, abs=1e-5)
    assert float(np.linalg.norm(a - b)) < 0.1 < float(np.linalg.norm(a - c))


def test_kcenter_greedy_covers_clusters_before_refining_them() -> None:
    picked, distances = greedy_pick(POINTS, 3, labeled=POINTS[:1])
    assert picked == [5, 3, 2]
    assert distances == pytest.approx([9.0, 4.0, 0.2], abs=1e-5)


def test_kcenter_greedy_without_labels_starts_at_a_seeded_frame() -> None:
    first_a, _ = greedy_pick(POINTS, 1, seed=3)
    first_b, distances = greedy_pick(POINTS, 1, seed=3)
    assert first_a == first_b
    assert distances == [float("inf")]


def test_kcenter_greedy_without_labels_starts_where_asked() -> None:
    picked, distances = greedy_pick(POINTS, 3, start=4)
    assert picked == [4, 0, 5]  # the far cluster's frame, then the other end, then the outlier
    assert distances[0] == float("inf")
    assert distances[1:] == pytest.approx([5.1, 3.9], abs=1e-5)


def test_weights_trade_distance_against_the_weight() -> None:
    # From frame 0: frame 5 is farthest (9.0) but weighs 0.1, so frame 4 (5.1 away) goes first;
    # then frame 5 (0.1 * 3.9 = 0.39) beats frame 2 (0.2). Unweighted: frame 5, then frame 3.
    weights = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.1])
    assert greedy_pick(POINTS, 2, labeled=POINTS[:1], weights=weights)[0] == [4, 5]
    assert greedy_pick(POINTS, 2, labeled=POINTS[:1])[0] == [5, 3]


def test_typicality_weighs_one_off_frames_down() -> None:
    weights = typicality(POINTS, neighbors=1)
    # Nearest-neighbour distances: 0.1, 0.1, 0.1, 0.1, 0.1, 3.9; median 0.1.
    assert weights[:5] == pytest.approx(np.ones(5))
    assert weights[5] == pytest.approx(0.1 / 3.9, rel=1e-4)
    assert typicality(POINTS[:1]).tolist() == [1.0]


def test_budget_larger_than_pool_picks_every_frame_once() -> None:
    picked, _ = greedy_pick(POINTS, 100, labeled=POINTS[:0])
    assert sorted(picked) == list(range(len(POINTS)))


@pytest.mark.parametrize(
    ("budget", "start", "message"),
    [(0, None, "budget"), (2, len(POINTS), "start"), (2, -1, "start")],
    ids=["zero-budget", "start-past-the-end", "negative-start"],
)
def test_greedy_pick_rejects_bad_arguments(budget: int, start: int | None, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        greedy_pick(POINTS, budget, start=start)


@pytest.mark.parametrize(
    "weights", [np.array([1.0]), -np.ones(len(POINTS))], ids=["wrong-length", "negative"]
)
def test_greedy_pick_rejects_bad_weights(weights: np.ndarray) -> None:
    with pytest.raises(InvalidInputError, match="weights"):
        greedy_pick(POINTS, 2, weights=weights)


def test_descriptor_rejects_an_empty_image() -> None:
    with pytest.raises(InvalidInputError, match="expected a BGR array"):
        frame_descriptor(np.zeros((0, 0, 3), np.uint8))
