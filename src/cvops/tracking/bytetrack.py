"""ByteTrack: two-stage association of high- and low-score boxes with a Kalman motion model.

Following Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every Detection Box"
(ECCV 2022): high-score boxes are matched first to confirmed and lost tracks; the tracks still
unmatched then try the low-score boxes, which recovers occluded objects instead of dropping them;
new tracks need a second sighting before they get an id. Optional appearance embeddings (on
``Detections.embeddings``) are fused with the motion cost as in BoT-SORT.

All track state lives in stacked arrays, so a frame costs a fixed handful of numpy calls whatever
the number of tracks; ids count per tracker instance.
"""

from __future__ import annotations

from dataclasses import dataclass

import lap
import numpy as np
import numpy.typing as npt

from cvops.detection.ops import box_iou
from cvops.detection.types import Detections
from cvops.errors import InvalidInputError
from cvops.tracking.forecast import DampedAccelerationForecaster, Forecaster
from cvops.tracking.kalman import KalmanBoxFilter, xyah_to_xyxy, xyxy_to_xyah

IndexArray = npt.NDArray[np.intp]

_NEW, _TRACKED, _LOST = 0, 1, 2
_UNMATCHABLE = 1e5


@dataclass(frozen=True, slots=True)
class ByteTrackSettings:
    """Thresholds of :class:`ByteTracker`.

    The score thresholds default lower than ByteTrack's MOT17 values (0.6 / 0.7), which suit only
    a strong detector: 0.3 / 0.3 gave the best HOTA, MOTA and IDF1 on MOT17-mini both with the public
    FRCNN detections and with YOLOX-nano's (``benchmarks/tracker_comparison.py``).

    Attributes:
        high_score: Boxes scoring at least this are matched first and may start tracks.
        low_score: Boxes scoring above this (and below ``high_score``) may continue a track.
        new_track_score: A box unmatched after both stages starts a track at this score or above.
        match_cost: Largest cost (1 - IoU x score) of a first-stage match.
        low_match_cost: Largest cost (1 - IoU) of a second-stage match with a low-score box.
        unconfirmed_match_cost: Largest cost of a match that confirms a new track.
        track_buffer: Frames (at 30 fps) a lost track is kept to be found again.
        frame_rate: Frames per second of the stream; scales ``track_buffer``.
        fuse_score: Weigh IoU by detection score in the first and confirming stages.
        class_aware: Match boxes only to tracks of the same class.
        duplicate_iou: A lost track overlapping a tracked one by more than this is dropped.
        appearance_threshold: Cosine distance / 2 above which appearance says "different".
        proximity_threshold: IoU cost above which appearance is not trusted.
        embedding_momentum: Weight of a track's old embedding in its moving average.
        forecast_frames: How far ahead ``Detections.forecasts_xyxy`` looks, in frames.
        history_frames: Boxes of each track's past kept for its forecaster.
        max_tracks: Most tracks (tracked, lost and new) kept; the longest-lost go first.
    """

    high_score: float = 0.3
    low_score: float = 0.1
    new_track_score: float = 0.3
    match_cost: float = 0.9
    low_match_cost: float = 0.5
    unconfirmed_match_cost: float = 0.7
    track_buffer: int = 30
    frame_rate: float = 30.0
    fuse_score: bool = True
    class_aware: bool = True
    duplicate_iou: float = 0.85
    appearance_threshold: float = 0.25
    proximity_threshold: float = 0.5
    embedding_momentum: float = 0.9
    forecast_frames: int = 10
    history_frames: int = 30
    max_tracks: int = 2048

    def __post_init__(self) -> None:
        """Reject settings that cannot track."""
        if not 0.0 <= self.low_score <= self.high_score <= 1.0:
            raise InvalidInputError(
                f"expected 0 <= low_score <= high_score <= 1, got {self.low_score}, {self.high_score}"
            )
        for name in ("match_cost", "low_match_cost", "unconfirmed_match_cost"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise InvalidInputError(f"{name}: expected a value in (0, 1], got {getattr(self, name)}")
        if self.track_buffer < 0 or self.frame_rate <= 0 or self.max_tracks < 1 or self.forecast_frames < 0:
            raise InvalidInputError(
                "expected track_buffer >= 0, frame_rate > 0, max_tracks >= 1 and forecast_frames >= 0"
            )
        if self.history_frames < 1:
            raise InvalidInputError(f"history_frames: expected >= 1, got {self.history_frames}")

    @property
    def max_frames_lost(self) -> int:
        """Frames a lost track survives at this stream's frame rate."""
        return int(self.frame_rate / 30.0 * self.track_buffer)


_DEFAULT_FORECASTER = DampedAccelerationForecaster()


class ByteTracker:
    """Multi-object tracker for one stream; see the module docstring."""

    def __init__(
        self,
        settings: ByteTrackSettings | None = None,
        motion: KalmanBoxFilter | None = None,
        forecaster: Forecaster | None = _DEFAULT_FORECASTER,
    ):
        """Create a tracker with no tracks.

        Args:
            settings: Thresholds; ByteTrackSettings() when None.
            motion: The association's motion model; a constant-velocity Kalman filter when None.
            forecaster: Predicts each track's box ``forecast_frames`` ahead from its recent boxes
                (damped acceleration by default, see ``benchmarks/forecast_eval.py``); None
                extrapolates the Kalman state at constant velocity.
        """
        self.settings = settings or ByteTrackSettings()
        self._motion = motion or KalmanBoxFilter()
        self._forecaster = forecaster
        self._frame = 0
        self._next_id = 1
        self._mean: npt.NDArray[np.float64] = np.zeros((0, 8))
        self._cov: npt.NDArray[np.float64] = np.zeros((0, 8, 8))
        self._ids: npt.NDArray[np.int64] = np.zeros(0, np.int64)  # 0 until confirmed
        self._status: npt.NDArray[np.int8] = np.zeros(0, np.int8)
        self._class_ids: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self._first_frame: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self._last_frame: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self._embeddings: npt.NDArray[np.float32] | None = None  # (N, D), zero rows when unknown
        # Each track's state box (cx, cy, w, h) per frame, newest last; the first rows may be unused.
        self._history: npt.NDArray[np.float64] = np.zeros((0, self.settings.history_frames, 4))
        self._history_len: npt.NDArray[np.int64] = np.zeros(0, np.int64)

    @property
    def active_tracks(self) -> int:
        """Return how many tracks are tracked or lost (not yet forgotten)."""
        return int(np.count_nonzero(self._status != _NEW))

    def update(self, detections: Detections) -> Detections:
        """Associate one frame's detections; return them with track ids, velocities and forecasts.

        Boxes not (yet) on a confirmed track get id -1. Velocities are pixels per frame of the box
        center; forecasts are the boxes ``forecast_frames`` ahead under constant velocity.
        """
        s = self.settings
        self._frame += 1
        self._predict()
        boxes = self._boxes()
        scores = detections.scores
        high_mask = scores >= s.high_score
        high = np.flatnonzero(high_mask)
        low = np.flatnonzero((scores > s.low_score) & ~high_mask)
        track_for_det = np.full(len(detections), -1, np.intp)
        track_used = np.zeros(len(self._ids), bool)

        pool = np.flatnonzero(self._status != _NEW)
        t1, d1 = self._match(pool, high, boxes, detections, s.match_cost, s.fuse_score, use_appearance=True)
        track_for_det[d1], track_used[t1] = t1, True
        tracked_left = np.flatnonzero(~track_used & (self._status == _TRACKED))
        t2, d2 = self._match(
            tracked_left, low, boxes, detections, s.low_match_cost, False, use_appearance=False
        )
        track_for_det[d2], track_used[t2] = t2, True
        self._status[~track_used & (self._status == _TRACKED)] = _LOST
        unconfirmed = np.flatnonzero(self._status == _NEW)
        high_left = np.flatnonzero(high_mask & (track_for_det < 0))
        t3, d3 = self._match(
            unconfirmed,
            high_left,
            boxes,
            detections,
            s.unconfirmed_match_cost,
            s.fuse_score,
            use_appearance=True,
        )
        track_for_det[d3], track_used[t3] = t3, True
        unconfirmed_unmatched = ~track_used & (self._status == _NEW)
        high_left = np.flatnonzero(high_mask & (track_for_det < 0))

        matched_dets = np.flatnonzero(track_for_det >= 0)
        self._correct(track_for_det[matched_dets], matched_dets, detections)
        starts = high_left[scores[high_left] >= s.new_track_score][: s.max_tracks]
        keep = ~unconfirmed_unmatched
        keep &= ~((self._status == _LOST) & (self._frame - self._last_frame > s.max_frames_lost))
        keep &= ~self._lost_duplicates()
        keep &= ~self._over_bound(keep, len(starts))
        # Rows shift when tracks are dropped: follow each matched detection's track to its new row.
        new_row = np.where(keep, np.cumsum(keep) - 1, -1)
        track_for_det[matched_dets] = new_row[track_for_det[matched_dets]]
        self._keep(keep)
        track_for_det[starts] = self._start(starts, detections)
        self._record_history()
        return self._annotate(detections, track_for_det)

    def compensate(self, affine: npt.NDArray[np.floating]) -> None:
        """Move every track by a camera motion (2, 3) ``[M | t]`` from the previous frame to this one.

        Centers and center velocities go through ``M`` (plus ``t`` for centers); heights and their
        velocities scale by ``sqrt(|det M|)``; covariances follow. Call before :meth:`update`.
        """
        if not len(self._ids):
            return
        matrix = np.asarray(affine, np.float64).reshape(2, 3)
        scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
        transform = np.eye(8)
        transform[0:2, 0:2] = transform[4:6, 4:6] = matrix[:, :2]
        transform[3, 3] = transform[7, 7] = scale
        self._mean = self._mean @ transform.T
        self._mean[:, :2] += matrix[:, 2]
        self._cov = transform @ self._cov @ transform.T

    def appearance_wanted(self, detections: Detections, refresh_every: int = 10) -> npt.NDArray[np.bool_]:
        """Return which high-score detections association would use an embedding for.

        Embedding every box every frame is too slow on a CPU, and mostly useless: a box that
        overlaps exactly one track is matched by motion alone. Wanted are boxes that overlap no
        track (a new or returning object), overlap several (crowding, crossings), or continue a
        track that has no embedding yet; and every ``refresh_every`` frames, all of them.
        """
        s = self.settings
        high = detections.scores >= s.high_score
        if not len(self._ids) or self._frame % refresh_every == refresh_every - 1:
            return high
        ahead = self._mean[:, :4] + self._mean[:, 4:]  # next frame's boxes, before update predicts
        iou = box_iou(xyah_to_xyxy(ahead).astype(np.float32), detections.xyxy)
        close = iou > 1.0 - s.proximity_threshold
        lone = close.sum(axis=0) != 1
        if self._embeddings is None:
            unknown = close.any(axis=0)
        else:
            has_embedding = np.abs(self._embeddings).sum(axis=1) > 0
            unknown = (close & ~has_embedding[:, None]).any(axis=0)
        wanted: npt.NDArray[np.bool_] = high & (lone | unknown)
        return wanted

    def _predict(self) -> None:
        if not len(self._ids):
            return
        # A track that is not being seen should not keep growing or shrinking.
        self._mean[self._status != _TRACKED, 7] = 0.0
        self._mean, self._cov = self._motion.predict(self._mean, self._cov)

    def _boxes(self) -> npt.NDArray[np.float32]:
        return xyah_to_xyxy(self._mean[:, :4]).astype(np.float32)

    def _match(
        self,
        tracks: IndexArray,
        dets: IndexArray,
        boxes: npt.NDArray[np.float32],
        detections: Detections,
        max_cost: float,
        fuse_score: bool,
        use_appearance: bool,
    ) -> tuple[IndexArray, IndexArray]:
        """Return matched (track rows, detection indices) with cost at most ``max_cost``."""
        empty = np.zeros(0, np.intp)
        if not len(tracks) or not len(dets):
            return empty, empty
        iou = box_iou(boxes[tracks], detections.xyxy[dets])
        iou_cost = 1.0 - iou
        cost = 1.0 - iou * detections.scores[dets][None, :] if fuse_score else iou_cost
        if use_appearance and self._embeddings is not None and detections.embeddings is not None:
            cost = self._fuse_appearance(cost, iou_cost, tracks, detections.embeddings[dets])
        if self.settings.class_aware:
            cost = np.where(
                self._class_ids[tracks][:, None] == detections.class_ids[dets][None, :], cost, 1.0
            )
        cost = np.where(cost > max_cost, _UNMATCHABLE, cost)
        _, track_to_det, _ = lap.lapjv(cost.astype(np.float64), extend_cost=True, cost_limit=max_cost)
        rows = np.flatnonzero(track_to_det >= 0)
        return tracks[rows], dets[track_to_det[rows]]

    def _fuse_appearance(
        self,
        cost: npt.NDArray[np.floating],
        iou_cost: npt.NDArray[np.floating],
        tracks: IndexArray,
        det_embeddings: npt.NDArray[np.float32],
    ) -> npt.NDArray[np.floating]:
        """Take the lower of motion and appearance cost where both agree the pair is plausible."""
        assert self._embeddings is not None
        s = self.settings
        track_embeddings = self._embeddings[tracks]
        known = (np.abs(track_embeddings).sum(axis=1) > 0)[:, None] & (np.abs(det_embeddings).sum(axis=1) > 0)
        appearance = (1.0 - track_embeddings @ det_embeddings.T) / 2.0
        usable = known & (appearance <= s.appearance_threshold) & (iou_cost <= s.proximity_threshold)
        return np.where(usable, np.minimum(cost, appearance), cost)

    def _correct(self, rows: IndexArray, dets: IndexArray, detections: Detections) -> None:
        if not len(rows):
            return
        mean, cov = self._motion.update(
            self._mean[rows], self._cov[rows], xyxy_to_xyah(detections.xyxy[dets])
        )
        self._mean[rows], self._cov[rows] = mean, cov
        self._status[rows] = _TRACKED
        self._last_frame[rows] = self._frame
        unnamed = rows[self._ids[rows] == 0]
        self._ids[unnamed] = np.arange(self._next_id, self._next_id + len(unnamed))
        self._next_id += len(unnamed)
        if detections.embeddings is not None:
            self._blend_embeddings(rows, detections.embeddings[dets])

    def _blend_embeddings(self, rows: IndexArray, embeddings: npt.NDArray[np.float32]) -> None:
        if self._embeddings is None:
            self._embeddings = np.zeros((len(self._ids), embeddings.shape[1]), np.float32)
        old = self._embeddings[rows]
        fresh = ~(np.abs(old).sum(axis=1) > 0)
        m = self.settings.embedding_momentum
        blended = np.where(fresh[:, None], embeddings, m * old + (1.0 - m) * embeddings)
        norms = np.linalg.norm(blended, axis=1, keepdims=True)
        self._embeddings[rows] = blended / np.maximum(norms, 1e-12)

    def _lost_duplicates(self) -> npt.NDArray[np.bool_]:
        """Mark lost tracks that overlap a tracked one: the tracked one already holds the object."""
        duplicate = np.zeros(len(self._ids), bool)
        tracked = np.flatnonzero(self._status == _TRACKED)
        lost = np.flatnonzero(self._status == _LOST)
        if len(tracked) and len(lost):
            boxes = self._boxes()
            overlap = box_iou(boxes[lost], boxes[tracked]).max(axis=1)
            duplicate[lost[overlap > self.settings.duplicate_iou]] = True
        return duplicate

    def _keep(self, keep: npt.NDArray[np.bool_]) -> None:
        self._mean, self._cov = self._mean[keep], self._cov[keep]
        self._ids, self._status = self._ids[keep], self._status[keep]
        self._class_ids = self._class_ids[keep]
        self._first_frame, self._last_frame = self._first_frame[keep], self._last_frame[keep]
        if self._embeddings is not None:
            self._embeddings = self._embeddings[keep]
        self._history, self._history_len = self._history[keep], self._history_len[keep]

    def _start(self, dets: IndexArray, detections: Detections) -> IndexArray:
        """Start a track per detection; return their rows. On the first frame they are confirmed."""
        n = len(dets)
        first_row = len(self._ids)
        if not n:
            return np.zeros(0, np.intp)
        mean, cov = self._motion.initiate(xyxy_to_xyah(detections.xyxy[dets]))
        confirmed = self._frame == 1
        ids = np.arange(self._next_id, self._next_id + n) if confirmed else np.zeros(n, np.int64)
        self._next_id += n if confirmed else 0
        self._mean = np.concatenate([self._mean, mean])
        self._cov = np.concatenate([self._cov, cov])
        self._ids = np.concatenate([self._ids, ids])
        self._status = np.concatenate([self._status, np.full(n, _TRACKED if confirmed else _NEW, np.int8)])
        self._class_ids = np.concatenate([self._class_ids, detections.class_ids[dets]])
        self._first_frame = np.concatenate([self._first_frame, np.full(n, self._frame)])
        self._last_frame = np.concatenate([self._last_frame, np.full(n, self._frame)])
        self._history = np.concatenate([self._history, np.zeros((n, *self._history.shape[1:]))])
        self._history_len = np.concatenate([self._history_len, np.zeros(n, np.int64)])
        if detections.embeddings is not None or self._embeddings is not None:
            width = (
                detections.embeddings.shape[1]
                if detections.embeddings is not None
                else self._embeddings.shape[1]  # type: ignore[union-attr]
            )
            if self._embeddings is None:
                self._embeddings = np.zeros((first_row, width), np.float32)
            self._embeddings = np.concatenate([self._embeddings, np.zeros((n, width), np.float32)])
            if detections.embeddings is not None:
                self._blend_embeddings(np.arange(first_row, first_row + n), detections.embeddings[dets])
        return np.arange(first_row, first_row + n)

    def _over_bound(self, keep: npt.NDArray[np.bool_], incoming: int) -> npt.NDArray[np.bool_]:
        """Mark the longest-unseen kept tracks that must go to stay within ``max_tracks``."""
        drop = np.zeros(len(keep), bool)
        excess = int(np.count_nonzero(keep)) + incoming - self.settings.max_tracks
        if excess > 0:
            kept = np.flatnonzero(keep)
            drop[kept[np.argsort(self._last_frame[kept], kind="stable")[:excess]]] = True
        return drop

    def _record_history(self) -> None:
        """Append every track's current box (corrected if seen, else predicted) to its history."""
        self._history[:, :-1] = self._history[:, 1:]
        xyah = self._mean[:, :4]
        self._history[:, -1, :2] = xyah[:, :2]
        self._history[:, -1, 2] = xyah[:, 2] * xyah[:, 3]
        self._history[:, -1, 3] = xyah[:, 3]
        np.minimum(self._history_len + 1, self._history.shape[1], out=self._history_len)

    def _forecast(self, rows: IndexArray) -> npt.NDArray[np.float64]:
        """Return the boxes (xyxy) of ``rows`` ``forecast_frames`` ahead."""
        k = self.settings.forecast_frames
        if k == 0:
            return xyah_to_xyxy(self._mean[rows, :4])
        if self._forecaster is None:
            return xyah_to_xyxy(self._mean[rows, :4] + k * self._mean[rows, 4:])
        cxcywh = self._forecaster.forecast_batch(
            self._history[rows].astype(np.float32), k, self._history_len[rows]
        ).astype(np.float64)
        half = cxcywh[:, 2:] / 2
        return np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)

    def _annotate(self, detections: Detections, track_for_det: IndexArray) -> Detections:
        valid = track_for_det >= 0
        rows = track_for_det[valid]
        ids = np.full(len(detections), -1, np.int64)
        ids[valid] = np.where(self._ids[rows] > 0, self._ids[rows], -1)
        velocities = np.zeros((len(detections), 2), np.float32)
        velocities[valid] = self._mean[rows, 4:6]
        forecasts = detections.xyxy.copy()
        if len(rows):
            forecasts[valid] = self._forecast(rows)
        tracked = detections.with_tracks(ids, velocities, forecasts)
        if self._embeddings is None:
            return tracked
        # Each tracked box carries its track's running embedding (zeros where none is known).
        embeddings = np.zeros((len(detections), self._embeddings.shape[1]), np.float32)
        embeddings[valid] = self._embeddings[rows]
        return tracked.with_embeddings(embeddings)
