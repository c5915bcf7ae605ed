"""``cvops track``: track objects through a sequence and write MOTChallenge results."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt
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
from cvops.tracking.bytetrack import ByteTracker, ByteTrackSettings
from cvops.tracking.image_tracker import ImageTracker
from cvops.tracking.iou_tracker import IouTracker
from cvops.tracking.mot_files import read_mot_file, read_seqinfo
from cvops.tracking.motion_compensation import SparseFlowCompensator
from cvops.tracking.reid import OnnxEmbedder
from cvops.tracking.sequence import TrackedFrame, mot_detections_by_frame, track_frames, write_tracks

_DEFAULTS = ByteTrackSettings()
# One frame to track: its detections and, when something needs the pixels, its image.
Frame = tuple[Detections, npt.NDArray[np.uint8] | None]


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
    reid: Path | None = typer.Option(
        None, "--reid", help="Re-id ONNX model (e.g. OSNet): fuse appearance with motion; needs --frames."
    ),
    cmc: bool = typer.Option(
        False, "--cmc", help="Compensate camera motion (sparse optical flow); needs --frames."
    ),
) -> None:
    """Track detections from a det.txt file or a model run on a folder of frames."""
    if (detections is None) == (model is None):
        raise InvalidInputError("give exactly one of --detections and --model")
    images = list_images([frames]) if frames is not None else []
    if (model is not None or reid is not None or cmc) and not images:
        raise InvalidInputError("--model, --reid and --cmc need --frames with the sequence's images")
    length = num_frames or len(images) or (_seqinfo_length(detections) if detections else 0)
    images = images[:length]
    if detections is not None:
        rows = read_mot_file(detections)
        length = length or int(rows.frame.max(initial=0))
        per_det = mot_detections_by_frame(rows, detections, length)
        wants_images = reid is not None or cmc
        if wants_images and len(images) < length:
            raise InvalidInputError(f"--frames: expected {length} images, found {len(images)}")
        frame_images = (read_image(p) if wants_images else None for p in images) if images else iter(())
        pairs: Iterator[Frame] = ((d, next(frame_images, None)) for d in per_det)
    else:
        assert model is not None
        settings = DetectorSettings(score_threshold, num_threads=threads)
        pairs = _detect_frames(model, images, settings, set(classes))
    byte_settings = ByteTrackSettings(
        high_score=high_score,
        new_track_score=new_track_score,
        match_cost=match_cost,
        track_buffer=track_buffer,
        frame_rate=frame_rate,
    )
    update = _updater(tracker_kind, byte_settings, reid, cmc, threads)
    console = Console(stderr=True)
    results: list[TrackedFrame] = []
    with Progress(
        TextColumn("[bold]track"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    ) as progress:
        task = progress.add_task("track", total=length)
        for item in track_frames(pairs, update, time.perf_counter):
            results.append(item)
            progress.advance(task)
    rows_written = write_tracks(out, results)
    _print_summary(console, results, rows_written, out)


def _updater(
    kind: TrackerKind, settings: ByteTrackSettings, reid: Path | None, cmc: bool, threads: int
) -> Callable[[Frame], Detections]:
    """Return the per-frame step of the chosen tracker."""
    if kind is TrackerKind.iou:
        if reid is not None or cmc:
            raise InvalidInputError("--reid and --cmc work with --tracker bytetrack only")
        iou_tracker = IouTracker()
        return lambda frame: iou_tracker.update(frame[0])
    if reid is None and not cmc:
        tracker = ByteTracker(settings)
        return lambda frame: tracker.update(frame[0])
    embedder = OnnxEmbedder(reid, num_threads=threads) if reid is not None else None
    image_tracker = ImageTracker(ByteTracker(settings), embedder, SparseFlowCompensator() if cmc else None)

    def step(frame: Frame) -> Detections:
        detections, image = frame
        assert image is not None  # checked above: --reid and --cmc need --frames
        return image_tracker.update(detections, image)

    return step


def _seqinfo_length(detections: Path) -> int:
    seqinfo = detections.parent.parent / "seqinfo.ini"
    return read_seqinfo(seqinfo).seq_length if seqinfo.is_file() else 0


def _detect_frames(
    model: Path, images: list[Path], settings: DetectorSettings, classes: set[str]
) -> Iterator[Frame]:
    detector = load_detector(model, settings)
    unknown = classes - set(detector.class_names)
    if unknown:
        raise InvalidInputError(f"--class: {sorted(unknown)} not among the model's classes")
    for path in images:
        image = read_image(path)
        found = detector.detect([image])[0]
        if classes:
            found = found.select(np.array([name in classes for name in found.class_names], bool))
        yield found, image


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
