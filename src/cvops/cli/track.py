"""``cvops track``: track objects through a sequence and write MOTChallenge results."""

from __future__ import annotations

import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from cvops.cli.app import app
from cvops.config import DetectorSettings
from cvops.detection.loader import load_detector
from cvops.detection.types import Detections
from cvops.errors import InvalidInputError
from cvops.images import list_images, read_image
from cvops.tracking.base import Tracker
from cvops.tracking.bytetrack import ByteTracker, ByteTrackSettings
from cvops.tracking.iou_tracker import IouTracker
from cvops.tracking.mot_files import read_mot_file, read_seqinfo
from cvops.tracking.sequence import TrackedFrame, mot_detections_by_frame, track_frames, write_tracks

_DEFAULTS = ByteTrackSettings()


class TrackerKind(StrEnum):
    """Trackers ``cvops track`` can run."""

    bytetrack = "bytetrack"
    iou = "iou"


@app.command()
def track(
    out: Path = typer.Option(..., "--out", "-o", help="MOTChallenge results file to write (<SEQ>.txt)."),
    detections: Path | None = typer.Option(
        None, "--detections", "-d", help="MOTChallenge det.txt to track (frame,-1,x,y,w,h,score,...)."
    ),
    model: Path | None = typer.Option(
        None, "--model", "-m", help="Model package to detect with on --frames."
    ),
    frames: Path | None = typer.Option(
        None, "--frames", help="Folder of the sequence's images, in name order."
    ),
    num_frames: int = typer.Option(
        0, help="Frames to track (0: images in --frames, else seqinfo.ini beside det/, else the last frame)."
    ),
    classes: list[str] = typer.Option([], "--class", help="With --model: keep only these class names."),
    score_threshold: float = typer.Option(0.1, help="With --model: drop boxes at or below this score."),
    tracker_kind: TrackerKind = typer.Option(TrackerKind.bytetrack, "--tracker", help="Tracker to run."),
    frame_rate: float = typer.Option(_DEFAULTS.frame_rate, help="Frames per second of the sequence."),
    track_buffer: int = typer.Option(
        _DEFAULTS.track_buffer, help="Frames (at 30 fps) a lost track waits to be found again."
    ),
    high_score: float = typer.Option(
        _DEFAULTS.high_score, help="Boxes at or above this score are matched first."
    ),
    new_track_score: float = typer.Option(
        _DEFAULTS.new_track_score, help="Unmatched boxes at or above this score start tracks."
    ),
    match_cost: float = typer.Option(
        _DEFAULTS.match_cost, help="Largest first-stage cost (1 - IoU x score) of a match."
    ),
    threads: int = typer.Option(0, help="With --model: runtime CPU threads (0: runtime default)."),
) -> None:
    """Track detections from a det.txt file or a model run on a folder of frames."""
    if (detections is None) == (model is None):
        raise InvalidInputError("give exactly one of --detections and --model")
    images = list_images([frames]) if frames is not None else []
    if model is not None and not images:
        raise InvalidInputError("--model needs --frames with the sequence's images")
    length = num_frames or len(images) or (_seqinfo_length(detections) if detections else 0)
    if detections is not None:
        rows = read_mot_file(detections)
        length = length or int(rows.frame.max(initial=0))
        per_frame: Iterator[Detections] = iter(mot_detections_by_frame(rows, detections, length))
    else:
        assert model is not None
        images = images[:length]
        settings = DetectorSettings(score_threshold, num_threads=threads)
        per_frame = _detect_frames(model, images, settings, set(classes))
    tracker: Tracker = (
        ByteTracker(
            ByteTrackSettings(
                high_score=high_score,
                new_track_score=new_track_score,
                match_cost=match_cost,
                track_buffer=track_buffer,
                frame_rate=frame_rate,
            )
        )
        if tracker_kind is TrackerKind.bytetrack
        else IouTracker()
    )
    console = Console(stderr=True)
    results: list[TrackedFrame] = []
    with Progress(
        TextColumn("[bold]track"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    ) as progress:
        task = progress.add_task("track", total=length)
        for item in track_frames(per_frame, tracker, time.perf_counter):
            results.append(item)
            progress.advance(task)
    rows_written = write_tracks(out, results)
    _print_summary(console, results, rows_written, out)


def _seqinfo_length(detections: Path) -> int:
    seqinfo = detections.parent.parent / "seqinfo.ini"
    return read_seqinfo(seqinfo).seq_length if seqinfo.is_file() else 0


def _detect_frames(
    model: Path, images: list[Path], settings: DetectorSettings, classes: set[str]
) -> Iterator[Detections]:
    detector = load_detector(model, settings)
    unknown = classes - set(detector.class_names)
    if unknown:
        raise InvalidInputError(f"--class: {sorted(unknown)} not among the model's classes")
    for path in images:
        found = detector.detect([read_image(path)])[0]
        if classes:
            found = found.select(np.array([name in classes for name in found.class_names], bool))
        yield found


def _print_summary(console: Console, results: list[TrackedFrame], rows: int, out: Path) -> None:
    update_ms = np.array([r.update_ms for r in results]) if results else np.zeros(1)
    ids = {
        int(i) for r in results if r.detections.track_ids is not None for i in r.detections.track_ids if i > 0
    }
    table = Table("frames", "tracks", "boxes written", "update ms p50", "update ms p99")
    table.add_row(
        str(len(results)),
        str(len(ids)),
        str(rows),
        f"{np.percentile(update_ms, 50):.3f}",
        f"{np.percentile(update_ms, 99):.3f}",
    )
    console.print(table)
    console.print(f"wrote {out}")
