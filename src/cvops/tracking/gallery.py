"""Cross-camera global ids: tracks of different cameras that look alike share one id.

Each camera's tracker gives local track ids; the gallery keeps one appearance embedding per
``(camera_id, track_id)`` and hands out global ids. A known track keeps its global id. A new track
inherits the global id of the most similar recent track of *another* camera, unless that id is
already held by a live track of its own camera (one person is in one place per camera); otherwise
it gets a fresh id. Re-entry on the same camera is the tracker's job, not the gallery's.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import lap
import numpy as np
import numpy.typing as npt

from cvops.errors import InvalidInputError

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

# Cost of a pair below the threshold: above the solver's cost limit, so never matched.
_GATED_COST = 1e6


@dataclass(slots=True)
class _Entry:
    global_id: int
    embedding: FloatArray  # (D,), unit length
    last_seen_s: float


class CrossCameraGallery:
    """Global ids across cameras from appearance embeddings; thread-safe.

    Memory is bounded: an entry unseen for longer than ``window_s`` (measured from the newest
    timestamp given) is dropped, and beyond ``max_entries`` the least recently seen go first.
    A dropped track that shows up again counts as new. Matching compares a new track with every
    live entry of the other cameras, O(entries x D) per call.
    """

    def __init__(
        self,
        similarity_threshold: float = 0.8,
        window_s: float = 30.0,
        allowed_transitions: set[tuple[str, str]] | None = None,
        max_entries: int = 10_000,
        ema_alpha: float = 0.1,
    ) -> None:
        """Configure the gallery.

        Args:
            similarity_threshold: Lowest cosine similarity at which a new track inherits a global id.
                The default is the best F1 of ``benchmarks/cross_camera_reid.py`` (OSNet-x0.25).
            window_s: Seconds an entry stays matchable (and kept) after it was last seen.
            allowed_transitions: Directed ``(from_camera, to_camera)`` pairs a person can walk;
                a new track on ``to_camera`` only inherits from ``from_camera``. None allows all.
            max_entries: Most ``(camera, track)`` entries kept.
            ema_alpha: Weight of the newest embedding in a known track's running embedding.

        Raises:
            InvalidInputError: When a setting is out of range.
        """
        if not -1.0 <= similarity_threshold <= 1.0:
            raise InvalidInputError(
                f"similarity_threshold: expected a value in [-1, 1], got {similarity_threshold}"
            )
        if not window_s > 0.0:
            raise InvalidInputError(f"window_s: expected > 0, got {window_s}")
        if max_entries < 1:
            raise InvalidInputError(f"max_entries: expected >= 1, got {max_entries}")
        if not 0.0 < ema_alpha <= 1.0:
            raise InvalidInputError(f"ema_alpha: expected a value in (0, 1], got {ema_alpha}")
        self.similarity_threshold = similarity_threshold
        self.window_s = window_s
        self.allowed_transitions = None if allowed_transitions is None else frozenset(allowed_transitions)
        self.max_entries = max_entries
        self.ema_alpha = ema_alpha
        # Least recently seen first, so expiry and the size bound pop from the front.
        self._entries: OrderedDict[tuple[str, int], _Entry] = OrderedDict()
        self._next_global_id = 1
        self._newest_s = -np.inf
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Return how many ``(camera, track)`` entries are kept."""
        with self._lock:
            return len(self._entries)

    def assign(self, camera_id: str, track_id: int, embedding: FloatArray, timestamp_s: float) -> int:
        """Return the global id of one track seen at ``timestamp_s``.

        Args:
            camera_id: The camera that saw the track.
            track_id: The track's id from that camera's tracker.
            embedding: Its appearance in this frame, shape (D,), float32 (normalized here).
            timestamp_s: When it was seen, in seconds on a clock shared by all cameras.
        """
        vectors = np.asarray(embedding, np.float32).reshape(1, -1)
        return int(self.assign_frame(camera_id, [track_id], vectors, timestamp_s)[0])

    def lookup(self, camera_id: str, track_ids: Sequence[int] | IntArray) -> IntArray:
        """Return the global ids already given to tracks of ``camera_id``, -1 where none was."""
        with self._lock:
            found = [self._entries.get((camera_id, int(t))) for t in track_ids]
        return np.array([-1 if e is None else e.global_id for e in found], np.int64)

    def assign_frame(
        self,
        camera_id: str,
        track_ids: Sequence[int] | IntArray,
        embeddings: FloatArray,
        timestamp_s: float,
    ) -> IntArray:
        """Return the global ids of the tracks of one frame of one camera.

        New tracks are matched to candidate global ids together (Hungarian assignment on cosine
        similarity), so two new tracks never take the same id.

        Args:
            camera_id: The camera that saw the tracks.
            track_ids: The tracks' ids from that camera's tracker, N distinct ints.
            embeddings: Their appearance in this frame, shape (N, D), float32.
            timestamp_s: When the frame was taken, in seconds on a clock shared by all cameras.

        Returns:
            Global ids, shape (N,), int64, in the order of ``track_ids``.

        Raises:
            InvalidInputError: When ids repeat, shapes disagree or a value is not finite.
        """
        ids = [int(t) for t in track_ids]
        vectors = _unit_rows(embeddings, len(ids))
        if len(set(ids)) != len(ids):
            raise InvalidInputError(f"track_ids: expected distinct ids, got {ids}")
        if not np.isfinite(timestamp_s):
            raise InvalidInputError(f"timestamp_s: expected a finite value, got {timestamp_s}")
        global_ids = np.zeros(len(ids), np.int64)
        with self._lock:
            self._expire(timestamp_s)
            new_rows: list[int] = []
            for row, track_id in enumerate(ids):
                entry = self._entries.get((camera_id, track_id))
                if entry is None:
                    new_rows.append(row)
                    continue
                mixed = (1.0 - self.ema_alpha) * entry.embedding + self.ema_alpha * vectors[row]
                entry.embedding = _unit_rows(mixed[None, :], 1)[0]
                entry.last_seen_s = max(entry.last_seen_s, timestamp_s)
                self._entries.move_to_end((camera_id, track_id))
                global_ids[row] = entry.global_id
            if new_rows:
                for row, global_id in zip(
                    new_rows, self._match(camera_id, vectors[new_rows], timestamp_s), strict=True
                ):
                    if global_id is None:
                        global_id = self._next_global_id
                        self._next_global_id += 1
                    self._entries[(camera_id, ids[row])] = _Entry(global_id, vectors[row].copy(), timestamp_s)
                    global_ids[row] = global_id
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return global_ids

    def _match(self, camera_id: str, vectors: FloatArray, timestamp_s: float) -> list[int | None]:
        """Pick for each new track an inheritable global id, or None."""
        oldest_s = timestamp_s - self.window_s
        claimed = {
            e.global_id
            for (camera, _), e in self._entries.items()
            if camera == camera_id and e.last_seen_s >= oldest_s
        }
        candidate_ids: list[int] = []
        candidate_vectors: list[FloatArray] = []
        for (camera, _), entry in self._entries.items():
            if camera == camera_id or entry.global_id in claimed:
                continue
            if abs(entry.last_seen_s - timestamp_s) > self.window_s:
                continue
            if self.allowed_transitions is not None and (camera, camera_id) not in self.allowed_transitions:
                continue
            candidate_ids.append(entry.global_id)
            candidate_vectors.append(entry.embedding)
        matches: list[int | None] = [None] * len(vectors)
        if not candidate_ids:
            return matches
        # A global id seen by several cameras is as similar as its most similar entry.
        candidates, column_of_entry = np.unique(np.asarray(candidate_ids, np.int64), return_inverse=True)
        similarity = np.full((len(candidates), len(vectors)), -np.inf, np.float32)
        np.maximum.at(similarity, column_of_entry, np.stack(candidate_vectors) @ vectors.T)
        similarity = similarity.T
        cost = np.where(similarity >= self.similarity_threshold, 1.0 - similarity, _GATED_COST)
        limit = 1.0 - self.similarity_threshold
        _, column_of_row, _ = lap.lapjv(cost.astype(np.float64), extend_cost=True, cost_limit=limit + 1e-9)
        for row, column in enumerate(column_of_row.tolist()):
            if column >= 0 and similarity[row, column] >= self.similarity_threshold:
                matches[row] = int(candidates[column])
        return matches

    def _expire(self, timestamp_s: float) -> None:
        """Drop entries unseen for longer than the window before the newest timestamp."""
        self._newest_s = max(self._newest_s, timestamp_s)
        oldest_s = self._newest_s - self.window_s
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.last_seen_s >= oldest_s:
                break
            del self._entries[key]


def _unit_rows(vectors: FloatArray, rows: int) -> FloatArray:
    """Check ``vectors`` is (rows, D) and finite; return it L2-normalized as float32."""
    array = np.asarray(vectors, np.float32)
    if array.ndim != 2 or array.shape[0] != rows or array.shape[1] == 0:
        raise InvalidInputError(f"embeddings: expected shape ({rows}, D), got {array.shape}")
    if not np.isfinite(array).all():
        raise InvalidInputError("embeddings: expected finite values, got NaN or inf")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    unit: FloatArray = (array / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
    return unit
