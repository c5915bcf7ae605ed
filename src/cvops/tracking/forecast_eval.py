"""Scoring trajectory forecasters on ground-truth tracks: ADE and FDE, in pixels and box heights.

A ground-truth track is cut into segments of consecutive frames (an id that skips a frame starts
a new segment). Every frame ``t`` of a segment with at least ``min_history`` boxes up to and
including ``t`` and ``horizon`` more boxes after it is one sample: the forecaster sees the
segment's boxes up to ``t`` (at most ``max_history`` of them) and predicts steps ``1..horizon``.

- ADE: mean over steps ``1..horizon`` of the distance between predicted and true box centers.
- FDE: that distance at step ``horizon`` only.

Both are averaged over samples, in pixels and divided by the height of the last box seen (in
box heights: scale-free, so sequences of different resolutions and distances compare).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cvops.errors import InvalidInputError
from cvops.tracking.forecast import Forecaster

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

_MOT15_COLUMNS = 10  # frame, id, x, y, w, h, conf, world x, y, z (no class column)
_MOT17_COLUMNS = 9  # frame, id, x, y, w, h, conf_flag, class, visibility
_PEDESTRIAN = 1


@dataclass(frozen=True, slots=True, eq=False)
class TrackSegment:
    """Boxes of one id over consecutive frames.

    Attributes:
        track_id: The ground-truth id.
        first_frame: Frame number of the first box (as written in the file, 1-based for MOT).
        boxes_cxcywh: Boxes, shape (T, 4), float32, center x, center y, width, height in pixels,
            one row per consecutive frame, oldest first.
    """

    track_id: int
    first_frame: int
    boxes_cxcywh: FloatArray

    def __post_init__(self) -> None:
        """Reject boxes of the wrong shape."""
        if self.boxes_cxcywh.ndim != 2 or self.boxes_cxcywh.shape[1] != 4 or not len(self.boxes_cxcywh):
            raise InvalidInputError(f"boxes_cxcywh: expected shape (T>=1, 4), got {self.boxes_cxcywh.shape}")


@dataclass(frozen=True, slots=True, eq=False)
class ForecastSamples:
    """Forecasting problems cut from segments, stacked for one batch call.

    Attributes:
        histories_cxcywh: Shape (N, max_history, 4), float32; sample ``i``'s boxes fill the last
            ``lengths[i]`` rows (newest last), the rows before are zeros.
        lengths: Boxes of history per sample, shape (N,), int64, in [min_history, max_history].
        futures_cxcywh: True boxes at steps ``1..horizon`` after the last history box, shape
            (N, horizon, 4), float32.
    """

    histories_cxcywh: FloatArray
    lengths: IntArray
    futures_cxcywh: FloatArray

    def __len__(self) -> int:
        """Return the number of samples."""
        return int(self.lengths.shape[0])


@dataclass(frozen=True, slots=True)
class ForecastErrors:
    """ADE and FDE of one forecaster at one horizon; the means are None when there are no samples.

    Attributes:
        horizon: Frames ahead of the last box seen.
        samples: Number of (track, frame) samples scored.
        ade_px: Mean center error over steps ``1..horizon``, pixels.
        fde_px: Mean center error at step ``horizon``, pixels.
        ade_norm: ``ade_px`` of each sample divided by its last box height, averaged.
        fde_norm: ``fde_px`` of each sample divided by its last box height, averaged.
    """

    horizon: int
    samples: int
    ade_px: float | None
    fde_px: float | None
    ade_norm: float | None
    fde_norm: float | None


def read_track_segments(path: Path) -> list[TrackSegment]:
    """Read a MOTChallenge ground-truth file into segments of consecutive frames.

    MOT15 files (10 columns) keep every row with a non-zero confidence; MOT16/17 files (9
    columns) keep pedestrians (``class == 1``) marked for evaluation (``conf_flag == 1``).

    Args:
        path: A ``gt.txt`` file; LF or CRLF line endings.

    Raises:
        InvalidInputError: When the file is missing, empty or has another number of columns.
    """
    frames, ids, xywh = _read_mot_gt(path)
    return track_segments(frames, ids, xywh)


def track_segments(frames: IntArray, ids: IntArray, xywh: FloatArray) -> list[TrackSegment]:
    """Group boxes by id and cut each id at missing frames.

    Args:
        frames: Frame number of each box, shape (N,).
        ids: Track id of each box, shape (N,).
        xywh: Boxes, shape (N, 4), top-left x, top-left y, width, height in pixels.

    Returns:
        Segments ordered by id, then by first frame.

    Raises:
        InvalidInputError: When an id has two boxes in one frame.
    """
    order = np.lexsort((frames, ids))
    frames, ids = frames[order], ids[order]
    boxes = xywh[order].astype(np.float32)
    boxes[:, :2] += boxes[:, 2:] / 2
    same_id = ids[1:] == ids[:-1]
    if (same_id & (frames[1:] == frames[:-1])).any():
        raise InvalidInputError("gt: expected one box per id and frame, got duplicates")
    breaks = np.flatnonzero(~same_id | (frames[1:] != frames[:-1] + 1)) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(frames)]])
    return [
        TrackSegment(int(ids[s]), int(frames[s]), np.ascontiguousarray(boxes[s:e]))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
        if e > s
    ]


def forecast_samples(
    segments: Sequence[TrackSegment], horizon: int, min_history: int = 2, max_history: int = 30
) -> ForecastSamples:
    """Cut every (segment, frame) with enough history and ``horizon`` known boxes after it.

    Args:
        segments: Ground-truth segments.
        horizon: Frames to forecast, >= 1.
        min_history: Fewest boxes of history a sample needs, >= 1.
        max_history: Most boxes of history handed to the forecaster (older ones are dropped).

    Raises:
        InvalidInputError: When ``horizon < 1`` or ``1 <= min_history <= max_history`` fails.
    """
    if horizon < 1:
        raise InvalidInputError(f"horizon: expected >= 1, got {horizon}")
    if not 1 <= min_history <= max_history:
        raise InvalidInputError(
            f"min_history, max_history: expected 1 <= min <= max, got {min_history}, {max_history}"
        )
    histories: list[FloatArray] = []
    lengths: list[int] = []
    futures: list[FloatArray] = []
    for segment in segments:
        boxes = segment.boxes_cxcywh
        for last in range(min_history - 1, len(boxes) - horizon):
            length = min(last + 1, max_history)
            padded = np.zeros((max_history, 4), np.float32)
            padded[max_history - length :] = boxes[last + 1 - length : last + 1]
            histories.append(padded)
            lengths.append(length)
            futures.append(boxes[last + 1 : last + 1 + horizon])
    if not histories:
        return ForecastSamples(
            np.zeros((0, max_history, 4), np.float32),
            np.zeros(0, np.int64),
            np.zeros((0, horizon, 4), np.float32),
        )
    return ForecastSamples(np.stack(histories), np.asarray(lengths, np.int64), np.stack(futures))


def forecast_errors(forecaster: Forecaster, samples: ForecastSamples) -> ForecastErrors:
    """Score ``forecaster`` on ``samples`` at every step up to their horizon.

    Args:
        forecaster: Any forecaster; called once per step with the whole batch.
        samples: From :func:`forecast_samples`.
    """
    horizon = int(samples.futures_cxcywh.shape[1])
    if not len(samples):
        return ForecastErrors(horizon, 0, None, None, None, None)
    steps = [
        forecaster.forecast_batch(samples.histories_cxcywh, step, samples.lengths)
        for step in range(1, horizon + 1)
    ]
    predicted = np.stack(steps, axis=1).astype(np.float64)  # (N, horizon, 4)
    errors_px = np.linalg.norm(predicted[..., :2] - samples.futures_cxcywh[..., :2], axis=2)  # (N, horizon)
    last_height = samples.histories_cxcywh[:, -1, 3].astype(np.float64)
    errors_norm = errors_px / np.maximum(last_height, 1e-6)[:, None]
    return ForecastErrors(
        horizon=horizon,
        samples=len(samples),
        ade_px=float(errors_px.mean()),
        fde_px=float(errors_px[:, -1].mean()),
        ade_norm=float(errors_norm.mean()),
        fde_norm=float(errors_norm[:, -1].mean()),
    )


def evaluate_forecaster(
    forecaster: Forecaster,
    segments: Sequence[TrackSegment],
    horizon: int,
    min_history: int = 2,
    max_history: int = 30,
) -> ForecastErrors:
    """Return ADE and FDE of ``forecaster`` over every sample of ``segments`` (see the module doc)."""
    return forecast_errors(forecaster, forecast_samples(segments, horizon, min_history, max_history))


def _read_mot_gt(path: Path) -> tuple[IntArray, IntArray, FloatArray]:
    """Return (frames, ids, top-left xywh) of the rows of a MOT gt file that count as pedestrians."""
    # Private on purpose: a shared MOT reader (tracking/mot_files.py) will replace this one.
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such ground-truth file")
    rows = [line.split(",") for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise InvalidInputError(f"{path}: expected MOT rows, got an empty file")
    columns = {len(row) for row in rows}
    if columns not in ({_MOT15_COLUMNS}, {_MOT17_COLUMNS}):
        raise InvalidInputError(
            f"{path}: expected {_MOT17_COLUMNS} (MOT17) or {_MOT15_COLUMNS} (MOT15) columns, "
            f"got {sorted(columns)}"
        )
    try:
        table = np.asarray(rows, np.float64)
    except ValueError as error:
        raise InvalidInputError(f"{path}: expected numbers, got {error}") from error
    keep = table[:, 6] != 0
    if table.shape[1] == _MOT17_COLUMNS:
        keep &= table[:, 7] == _PEDESTRIAN
    table = table[keep]
    return table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2:6].astype(np.float32)
