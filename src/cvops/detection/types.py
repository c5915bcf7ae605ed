"""The one record every detector, tracker and sink in cvops exchanges."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from cvops.errors import InvalidDetectionsError

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class Detections:
    """Detections of one image, in pixels of the original image.

    Attributes:
        xyxy: Boxes, shape (N, 4), float32, ``x1, y1, x2, y2`` in original-image pixels.
        scores: Confidence of each box, shape (N,), float32 in [0, 1].
        class_ids: Class index of each box, shape (N,), int64, >= 0.
        class_names: Name of each box's class, N strings.
        track_ids: Optional track id of each box, shape (N,), int64 (-1 when unassigned).
        embeddings: Optional appearance embedding of each box, shape (N, D), float32.
        global_ids: Optional cross-camera identity of each box, shape (N,), int64 (-1 when unknown).
        velocities_xy: Optional velocity of each box's center, shape (N, 2), float32, pixels per frame.
        forecasts_xyxy: Optional predicted box some frames ahead, shape (N, 4), float32, pixels.
        class_scores: Optional score of every class for each box as the detector's head gives it,
            shape (N, C), float32 in [0, 1] (C >= 1, the model's classes); None when the model
            reports only the top class (RT-DETR) or the record was not made by a detector.
    """

    xyxy: FloatArray
    scores: FloatArray
    class_ids: IntArray
    class_names: tuple[str, ...]
    track_ids: IntArray | None = None
    embeddings: FloatArray | None = None
    global_ids: IntArray | None = None
    velocities_xy: FloatArray | None = None
    forecasts_xyxy: FloatArray | None = None
    class_scores: FloatArray | None = None

    def __post_init__(self) -> None:
        """Check shapes, dtypes and ranges so a bad record never travels further."""
        n = _check_array("xyxy", self.xyxy, np.float32, 2)
        if self.xyxy.shape[1] != 4:
            raise InvalidDetectionsError(f"xyxy: expected shape (N, 4), got {self.xyxy.shape}")
        _check_array("scores", self.scores, np.float32, 1, n)
        _check_array("class_ids", self.class_ids, np.int64, 1, n)
        if len(self.class_names) != n:
            raise InvalidDetectionsError(f"class_names: expected {n} names, got {len(self.class_names)}")
        if self.track_ids is not None:
            _check_array("track_ids", self.track_ids, np.int64, 1, n)
        if self.embeddings is not None:
            _check_array("embeddings", self.embeddings, np.float32, 2, n)
        if self.global_ids is not None:
            _check_array("global_ids", self.global_ids, np.int64, 1, n)
        for name in ("velocities_xy", "forecasts_xyxy"):
            value = getattr(self, name)
            if value is not None:
                _check_array(name, value, np.float32, 2, n)
        if self.class_scores is not None:
            _check_class_scores(self.class_scores, n)
        if n == 0:
            return
        if not np.isfinite(self.xyxy).all():
            raise InvalidDetectionsError("xyxy: expected finite values, got NaN or inf")
        if (self.xyxy[:, 2] < self.xyxy[:, 0]).any() or (self.xyxy[:, 3] < self.xyxy[:, 1]).any():
            raise InvalidDetectionsError("xyxy: expected x2 >= x1 and y2 >= y1 for every box")
        if not ((self.scores >= 0.0) & (self.scores <= 1.0)).all():
            raise InvalidDetectionsError(
                f"scores: expected values in [0, 1], got [{self.scores.min()}, {self.scores.max()}]"
            )
        if (self.class_ids < 0).any():
            raise InvalidDetectionsError("class_ids: expected values >= 0")

    @classmethod
    def empty(cls) -> Detections:
        """Return a record with no detections."""
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            class_ids=np.zeros((0,), np.int64),
            class_names=(),
        )

    @classmethod
    def from_arrays(
        cls,
        xyxy: npt.ArrayLike,
        scores: npt.ArrayLike,
        class_ids: npt.ArrayLike,
        vocabulary: tuple[str, ...],
        *,
        class_scores: npt.ArrayLike | None = None,
    ) -> Detections:
        """Build a record from loose arrays, naming each box from ``vocabulary``.

        Args:
            xyxy: Boxes, shape (N, 4), pixels; converted to float32.
            scores: Scores, shape (N,); converted to float32.
            class_ids: Class indices into ``vocabulary``, shape (N,).
            vocabulary: The model's class names, indexed by class id.
            class_scores: Optional score of every class for each box, shape (N, C); converted
                to float32.

        Raises:
            InvalidDetectionsError: When a class id is outside the vocabulary, or an array has
                the wrong shape or range.
        """
        ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(vocabulary)):
            raise InvalidDetectionsError(
                f"class_ids: expected values in [0, {len(vocabulary)}), got [{ids.min()}, {ids.max()}]"
            )
        return cls(
            xyxy=np.asarray(xyxy, dtype=np.float32).reshape(-1, 4),
            scores=np.asarray(scores, dtype=np.float32).reshape(-1),
            class_ids=ids,
            class_names=tuple(vocabulary[i] for i in ids.tolist()),
            class_scores=None if class_scores is None else np.asarray(class_scores, dtype=np.float32),
        )

    def __len__(self) -> int:
        """Return the number of detections."""
        return int(self.xyxy.shape[0])

    def select(self, index: npt.NDArray[np.bool_] | npt.NDArray[np.integer[Any]]) -> Detections:
        """Return the detections picked by a boolean mask or an index array, in that order."""
        positions = np.flatnonzero(index) if index.dtype == np.bool_ else np.asarray(index)
        return Detections(
            xyxy=self.xyxy[positions],
            scores=self.scores[positions],
            class_ids=self.class_ids[positions],
            class_names=tuple(self.class_names[i] for i in positions.tolist()),
            track_ids=None if self.track_ids is None else self.track_ids[positions],
            embeddings=None if self.embeddings is None else self.embeddings[positions],
            global_ids=None if self.global_ids is None else self.global_ids[positions],
            velocities_xy=None if self.velocities_xy is None else self.velocities_xy[positions],
            forecasts_xyxy=None if self.forecasts_xyxy is None else self.forecasts_xyxy[positions],
            class_scores=None if self.class_scores is None else self.class_scores[positions],
        )

    def with_track_ids(self, track_ids: IntArray) -> Detections:
        """Return a copy carrying ``track_ids``, shape (N,)."""
        return replace(self, track_ids=track_ids)

    def with_tracks(
        self, track_ids: IntArray, velocities_xy: FloatArray, forecasts_xyxy: FloatArray
    ) -> Detections:
        """Return a copy carrying what a tracker knows of each box (see the attributes)."""
        return replace(
            self,
            track_ids=track_ids,
            velocities_xy=velocities_xy.astype(np.float32, copy=False),
            forecasts_xyxy=forecasts_xyxy.astype(np.float32, copy=False),
        )

    def with_global_ids(self, global_ids: IntArray) -> Detections:
        """Return a copy carrying cross-camera ``global_ids``, shape (N,)."""
        return replace(self, global_ids=global_ids)

    def with_embeddings(self, embeddings: FloatArray) -> Detections:
        """Return a copy carrying ``embeddings``, shape (N, D)."""
        return replace(self, embeddings=embeddings)


def _check_class_scores(class_scores: FloatArray, n: int) -> None:
    """Check ``class_scores`` is (n, C >= 1) float32 in [0, 1].

    Raises:
        InvalidDetectionsError: When its type, dtype, shape or range is wrong.
    """
    _check_array("class_scores", class_scores, np.float32, 2, n)
    if class_scores.shape[1] < 1:
        raise InvalidDetectionsError(
            f"class_scores: expected shape (N, C) with C >= 1, got {class_scores.shape}"
        )
    # Both comparisons are False for NaN, so this also rejects NaN.
    if not ((class_scores >= 0.0) & (class_scores <= 1.0)).all():
        raise InvalidDetectionsError(
            f"class_scores: expected values in [0, 1], got [{class_scores.min()}, {class_scores.max()}]"
        )


def _check_array(
    name: str, array: object, dtype: type[np.generic], ndim: int, length: int | None = None
) -> int:
    if not isinstance(array, np.ndarray):
        raise InvalidDetectionsError(f"{name}: expected a numpy array, got {type(array).__name__}")
    if array.dtype != dtype:
        raise InvalidDetectionsError(f"{name}: expected dtype {dtype.__name__}, got {array.dtype}")
    if array.ndim != ndim:
        raise InvalidDetectionsError(f"{name}: expected {ndim} dimensions, got {array.ndim}")
    if length is not None and array.shape[0] != length:
        raise InvalidDetectionsError(f"{name}: expected {length} rows, got {array.shape[0]}")
    return int(array.shape[0])
