"""CrossCameraGallery on synthetic unit vectors: which (camera, track) share a global id."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from cvops.errors import InvalidInputError
from cvops.tracking.gallery import CrossCameraGallery


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(4, np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


E1, E2 = unit(1, 0), unit(0, 1)
NEAR_E1 = unit(1, 0.1)  # cosine 0.995 with E1
HALFWAY = unit(1, 1)  # cosine 0.707 with E1: below the 0.8 used here

Step = tuple[str, int, np.ndarray, float]  # camera, track, embedding, timestamp_s

CASES: list[tuple[str, dict[str, Any], list[Step], list[int]]] = [
    ("same_track_keeps_id", {}, [("A", 1, E1, 0.0), ("A", 1, E2, 1.0)], [1, 1]),
    ("other_camera_inherits", {}, [("A", 1, E1, 0.0), ("B", 7, NEAR_E1, 0.5)], [1, 1]),
    ("below_threshold_new_id", {}, [("A", 1, E1, 0.0), ("B", 7, HALFWAY, 0.5)], [1, 2]),
    ("outside_window_new_id", {}, [("A", 1, E1, 0.0), ("B", 7, E1, 10.5)], [1, 2]),
    ("inside_window_inherits", {}, [("A", 1, E1, 0.0), ("B", 7, E1, 9.5)], [1, 1]),
    (
        "disallowed_transition_new_id",
        {"allowed_transitions": {("B", "A")}},
        [("A", 1, E1, 0.0), ("B", 7, E1, 1.0)],
        [1, 2],
    ),
    (
        "allowed_transition_inherits",
        {"allowed_transitions": {("A", "B")}},
        [("A", 1, E1, 0.0), ("B", 7, E1, 1.0)],
        [1, 1],
    ),
    ("same_camera_never_inherits", {}, [("A", 1, E1, 0.0), ("A", 2, E1, 1.0)], [1, 2]),
    (
        "id_claimed_on_camera_new_id",
        {},
        [("A", 1, E1, 0.0), ("B", 7, E1, 0.0), ("B", 8, E1, 1.0)],
        [1, 1, 2],
    ),
    (
        "embedding_follows_track_with_full_ema",
        {"ema_alpha": 1.0},
        [("A", 1, E1, 0.0), ("A", 1, E2, 1.0), ("B", 7, E2, 2.0)],
        [1, 1, 1],
    ),
    (
        "embedding_moves_slowly_with_small_ema",
        {"ema_alpha": 0.1},
        [("A", 1, E1, 0.0), ("A", 1, E2, 1.0), ("B", 7, E2, 2.0)],
        [1, 1, 2],
    ),
    ("expired_track_counts_as_new", {}, [("A", 1, E1, 0.0), ("A", 1, E1, 20.0)], [1, 2]),
    (
        "id_seen_by_two_cameras_reaches_a_third",
        {},
        [("A", 1, E1, 0.0), ("B", 7, E1, 0.0), ("C", 3, NEAR_E1, 1.0)],
        [1, 1, 1],
    ),
]


@pytest.mark.parametrize(("settings", "steps", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_assign(settings: dict[str, Any], steps: list[Step], expected: list[int]) -> None:
    gallery = CrossCameraGallery(**{"similarity_threshold": 0.8, "window_s": 10.0} | settings)
    got = [gallery.assign(camera, track, vector, t) for camera, track, vector, t in steps]
    assert got == expected


def test_two_new_tracks_of_one_frame_never_share_an_id() -> None:
    gallery = CrossCameraGallery(similarity_threshold=0.8)
    gallery.assign("A", 1, E1, 0.0)
    got = gallery.assign_frame("B", [5, 6], np.stack([unit(1, 0.3), NEAR_E1]), 0.1)
    assert got.tolist() == [2, 1]  # the closer one inherits, the other starts a new id


def test_frame_assignment_maximizes_total_similarity() -> None:
    # Greedy would give x the id of u1 (0.75) and leave y below threshold; together both inherit.
    gallery = CrossCameraGallery(similarity_threshold=0.5)
    gallery.assign_frame("A", [1, 2], np.stack([E1, E2]), 0.0)
    x = np.array([0.75, 0.6, np.sqrt(1 - 0.75**2 - 0.6**2), 0.0], np.float32)
    y = np.array([0.7, 0.1, 0.0, np.sqrt(1 - 0.7**2 - 0.1**2)], np.float32)
    assert gallery.assign_frame("B", [8, 9], np.stack([x, y]), 0.1).tolist() == [2, 1]


def test_known_and_new_tracks_in_one_frame() -> None:
    gallery = CrossCameraGallery(similarity_threshold=0.8)
    gallery.assign("A", 1, E1, 0.0)
    gallery.assign("B", 7, E1, 0.0)
    got = gallery.assign_frame("B", [7, 8], np.stack([E1, E1]), 0.1)
    assert got.tolist() == [1, 2]  # B7 still holds id 1 on camera B, so B8 cannot take it


def test_empty_frame() -> None:
    gallery = CrossCameraGallery()
    assert gallery.assign_frame("A", [], np.zeros((0, 4), np.float32), 0.0).shape == (0,)


def test_memory_is_bounded_by_max_entries() -> None:
    gallery = CrossCameraGallery(max_entries=3)
    for track in range(10):
        gallery.assign("A", track, unit(1, track), float(track))
    assert len(gallery) == 3


def test_entries_older_than_the_window_are_dropped() -> None:
    gallery = CrossCameraGallery(window_s=5.0)
    gallery.assign_frame("A", [1, 2, 3], np.stack([E1, E2, HALFWAY]), 0.0)
    gallery.assign("B", 1, E1, 100.0)
    assert len(gallery) == 1


def test_ids_count_per_instance() -> None:
    first, second = CrossCameraGallery(), CrossCameraGallery()
    assert first.assign("A", 1, E1, 0.0) == 1
    assert first.assign("A", 2, E2, 0.0) == 2
    assert second.assign("A", 1, E2, 0.0) == 1


def test_threads_never_hand_out_an_id_twice() -> None:
    gallery = CrossCameraGallery(similarity_threshold=1.0)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((4, 50, 8)).astype(np.float32)
    got: list[int] = []
    lock = threading.Lock()

    def run(camera: int) -> None:
        ids = [gallery.assign(f"cam{camera}", t, vectors[camera, t], 0.0) for t in range(50)]
        with lock:
            got.extend(ids)

    threads = [threading.Thread(target=run, args=(c,)) for c in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == list(range(1, 201))


@pytest.mark.parametrize(
    "settings",
    [
        {"similarity_threshold": 1.5},
        {"window_s": 0.0},
        {"max_entries": 0},
        {"ema_alpha": 0.0},
    ],
    ids=["threshold", "window", "max_entries", "ema_alpha"],
)
def test_rejects_bad_settings(settings: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        CrossCameraGallery(**settings)


@pytest.mark.parametrize(
    ("track_ids", "embeddings", "timestamp_s"),
    [
        ([1, 1], np.stack([E1, E2]), 0.0),
        ([1, 2], np.stack([E1]), 0.0),
        ([1], np.full((1, 4), np.nan, np.float32), 0.0),
        ([1], np.stack([E1]), float("nan")),
    ],
    ids=["repeated_track", "rows_mismatch", "nan_embedding", "nan_timestamp"],
)
def test_rejects_bad_frames(track_ids: list[int], embeddings: np.ndarray, timestamp_s: float) -> None:
    with pytest.raises(InvalidInputError):
        CrossCameraGallery().assign_frame("A", track_ids, embeddings, timestamp_s)
