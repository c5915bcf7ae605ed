"""Run a tracker over a whole sequence: detections per frame in, MOTChallenge rows out."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from cvops.detection.types import Detections
from cvops.errors import InvalidInputError
from cvops.tracking.mot_files import MotRows, write_mot_results

PEDESTRIAN = ("pedestrian",)
FrameT = TypeVar("FrameT")


def mot_detections_by_frame(rows: MotRows, source: Path, num_frames: int) -> list[Detections]:
    """Split the rows of a MOTChallenge ``det.txt`` into one :class:`Detections` per frame 1..N.

    Args:
        rows: The detection file's rows (``frame,-1,x,y,w,h,score,...``).
        source: The file, named in errors.
        num_frames: Frames in the sequence; rows of later frames are ignored.

    Raises:
        InvalidInputError: When a score lies outside [0, 1] (e.g. DPM detections: rescale them first).
    """
    in_range = (rows.frame >= 1) & (rows.frame <= num_frames)
    scores = rows.score[in_range]
    if scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
        raise InvalidInputError(
            f"{source}: expected detection scores in [0, 1], got [{scores.min()}, {scores.max()}]"
        )
    xywh = rows.xywh[in_range]
    xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + np.maximum(xywh[:, 2:], 0)], axis=1)
    frames = rows.frame[in_range]
    order = np.argsort(frames, kind="stable")
    bounds = np.searchsorted(frames[order], np.arange(1, num_frames + 2))
    return [
        Detections.from_arrays(
            xyxy[order[start:end]], scores[order[start:end]], np.zeros(end - start, np.int64), PEDESTRIAN
        )
        for start, end in itertools.pairwise(bounds)
    ]


@dataclass(frozen=True, slots=True)
class TrackedFrame:
    """One frame's tracked boxes and how long the tracker took for it."""

    frame: int
    detections: Detections
    update_ms: float


def track_frames(
    frames: Iterable[FrameT], update: Callable[[FrameT], Detections], clock: Callable[[], float]
) -> Iterator[TrackedFrame]:
    """Feed frames (in order, numbered from 1) to ``update``; yield each result with its update time.

    A frame is whatever ``update`` takes: :class:`Detections` for a :class:`Tracker`'s ``update``,
    or detections with their image for :class:`~cvops.tracking.image_tracker.ImageTracker`.
    """
    for number, frame in enumerate(frames, start=1):
        start = clock()
        tracked = update(frame)
        yield TrackedFrame(number, tracked, (clock() - start) * 1e3)


def write_tracks(path: Path, tracked: Iterable[TrackedFrame]) -> int:
    """Write the boxes that carry a track id as MOTChallenge results; return how many rows."""
    frames: list[npt.NDArray[np.int64]] = []
    ids: list[npt.NDArray[np.int64]] = []
    boxes: list[npt.NDArray[np.float32]] = []
    scores: list[npt.NDArray[np.float32]] = []
    for item in tracked:
        d = item.detections
        if d.track_ids is None:
            raise InvalidInputError(f"frame {item.frame}: the tracker returned no track ids")
        kept = d.track_ids >= 1
        xyxy = d.xyxy[kept]
        frames.append(np.full(int(kept.sum()), item.frame, np.int64))
        ids.append(d.track_ids[kept])
        boxes.append(np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1))
        scores.append(d.scores[kept])
    if not frames:
        write_mot_results(path, [], [], np.zeros((0, 4)), [])
        return 0
    all_frames = np.concatenate(frames)
    write_mot_results(path, all_frames, np.concatenate(ids), np.concatenate(boxes), np.concatenate(scores))
    return int(all_frames.shape[0])
