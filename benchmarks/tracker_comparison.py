"""Our ByteTracker against Roboflow's `trackers` ByteTrack and Ultralytics' BYTETracker, in one run.

Accuracy: every MOT17-mini sequence of the fixtures, tracked (a) from its public FRCNN `det.txt`
and (b) from YOLOX-nano detections of its frames (persons, score > 0.1), scored with TrackEval
(HOTA, MOTA, IDF1) per sequence and combined. Speed: the time of each `update` call on those
sequences, and on a synthetic scene of 50 moving objects (jittered boxes, random scores) where the
three trackers take turns of 50 frames so machine drift hits all alike. Each tracker runs with its
own library defaults. Writes JSON with the command, machine, settings and results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv
from detector_latency import FIXTURES_DIR, STATE_DIR, environment, percentile
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from trackers import ByteTrackTracker
from ultralytics.engine.results import Boxes
from ultralytics.trackers.byte_tracker import BYTETracker
from ultralytics.utils import YAML, IterableSimpleNamespace
from ultralytics.utils.checks import check_yaml

from cvops.config import DetectorSettings
from cvops.detection.coco import COCO80_NAMES
from cvops.detection.loader import load_detector
from cvops.detection.packaging import package_onnx
from cvops.detection.types import Detections
from cvops.images import list_images, read_image
from cvops.metrics.tracking import MotSequence, evaluate_mot
from cvops.offline import configure_offline
from cvops.tracking.bytetrack import ByteTracker
from cvops.tracking.image_tracker import ImageTracker
from cvops.tracking.mot_files import read_mot_file
from cvops.tracking.motion_compensation import SparseFlowCompensator
from cvops.tracking.reid import OnnxEmbedder
from cvops.tracking.sequence import TrackedFrame, mot_detections_by_frame, write_tracks

TRACKERS = ("cvops", "roboflow_trackers", "ultralytics")
# Accuracy only (it needs the frames): our tracker with OSNet appearance and camera-motion compensation.
WITH_IMAGES = "cvops_reid_cmc"
OSNET = "models/osnet_x0_25_msmt17/osnet_x0_25_msmt17.onnx"
GOALS = {"update_ms_p50_at_50_objects_max": 1.0}

# A tracker under test: one frame's Detections in, track ids (aligned with the input, -1 none) out.
Update = Callable[[Detections], np.ndarray]


def cvops_tracker() -> Update:
    tracker = ByteTracker()

    def update(detections: Detections) -> np.ndarray:
        ids = tracker.update(detections).track_ids
        assert ids is not None
        return ids

    return update


def roboflow_tracker() -> tuple[Update, Callable[[Detections], Any]]:
    tracker = ByteTrackTracker()

    def convert(detections: Detections) -> sv.Detections:
        return sv.Detections(
            xyxy=detections.xyxy.astype(np.float64),
            confidence=detections.scores,
            class_id=detections.class_ids,
            data={"index": np.arange(len(detections))},
        )

    def update(converted: sv.Detections) -> np.ndarray:
        out = tracker.update(converted)
        ids = np.full(len(converted), -1, np.int64)
        if len(out):
            ids[out.data["index"]] = out.tracker_id
        return ids

    return update, convert


def ultralytics_tracker() -> tuple[Update, Callable[[Detections], Any]]:
    args = IterableSimpleNamespace(**YAML.load(check_yaml("bytetrack.yaml")))
    tracker = BYTETracker(args)  # resets its id counter, which is process-wide

    def convert(detections: Detections) -> Boxes:
        table = np.concatenate(
            [detections.xyxy, detections.scores[:, None], detections.class_ids[:, None].astype(np.float32)],
            axis=1,
        )
        return Boxes(table, (1080, 1920))

    def update(boxes: Boxes) -> np.ndarray:
        out = tracker.update(boxes)
        ids = np.full(len(boxes), -1, np.int64)
        if len(out):  # rows: x1, y1, x2, y2, id, score, class, input index
            ids[out[:, 7].astype(np.int64)] = out[:, 4].astype(np.int64)
        return ids

    return update, convert


def make_tracker(name: str) -> tuple[Callable[[Any], np.ndarray], Callable[[Detections], Any]]:
    """Return the tracker's update and the conversion of Detections to its input (not timed)."""
    if name == "cvops":
        return cvops_tracker(), lambda d: d
    if name == "roboflow_trackers":
        return roboflow_tracker()
    return ultralytics_tracker()


def run_sequence(
    name: str, frames: Sequence[Detections], images: Sequence[Path]
) -> tuple[list[TrackedFrame], list[float]]:
    if name == WITH_IMAGES:
        return run_with_images(frames, images)
    update, convert = make_tracker(name)
    inputs = [convert(d) for d in frames]
    tracked, times = [], []
    for number, (detections, converted) in enumerate(zip(frames, inputs, strict=True), start=1):
        start = time.perf_counter()
        ids = update(converted)
        elapsed = (time.perf_counter() - start) * 1e3
        times.append(elapsed)
        tracked.append(TrackedFrame(number, detections.with_track_ids(ids), elapsed))
    return tracked, times


def run_with_images(
    frames: Sequence[Detections], images: Sequence[Path]
) -> tuple[list[TrackedFrame], list[float]]:
    """Time ImageTracker per frame: embedding, motion estimate and association (not image decoding)."""
    embedder = OnnxEmbedder(FIXTURES_DIR / OSNET, num_threads=2)
    tracker = ImageTracker(embedder=embedder, compensator=SparseFlowCompensator())
    tracked, times = [], []
    for number, (detections, path) in enumerate(zip(frames, images, strict=True), start=1):
        image = read_image(path)
        start = time.perf_counter()
        result = tracker.update(detections, image)
        elapsed = (time.perf_counter() - start) * 1e3
        times.append(elapsed)
        tracked.append(TrackedFrame(number, result, elapsed))
    return tracked, times


def yolox_frames(images: list[Path], detector: Any) -> list[Detections]:
    person = COCO80_NAMES.index("person")
    out = []
    for path in images:
        found = detector.detect([read_image(path)])[0]
        out.append(found.select(found.class_ids == person))
    return out


def synthetic_scene(num_objects: int, num_frames: int, seed: int = 0) -> list[Detections]:
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 1800, (num_objects, 2))
    velocity = rng.normal(0, 3, (num_objects, 2))
    size = rng.uniform(30, 120, (num_objects, 2))
    frames = []
    for f in range(num_frames):
        corner = start + velocity * f + rng.normal(0, 1.5, (num_objects, 2))
        xyxy = np.concatenate([corner, corner + size], axis=1)
        scores = rng.uniform(0.2, 1.0, num_objects)
        frames.append(Detections.from_arrays(xyxy, scores, np.zeros(num_objects, np.int64), ("person",)))
    return frames


def synthetic_timing(num_objects: int, num_frames: int, turn: int) -> dict[str, dict[str, float]]:
    frames = synthetic_scene(num_objects, num_frames)
    runners = {name: make_tracker(name) for name in TRACKERS}
    inputs = {name: [convert(d) for d in frames] for name, (_, convert) in runners.items()}
    times: dict[str, list[float]] = {name: [] for name in TRACKERS}
    for begin in range(0, num_frames, turn):
        for name, (update, _) in runners.items():
            for converted in inputs[name][begin : begin + turn]:
                start = time.perf_counter()
                update(converted)
                times[name].append((time.perf_counter() - start) * 1e3)
    warm = {name: np.array(t[turn:]) for name, t in times.items()}  # the first turn fills the tracks
    return {
        n: {"p50": percentile(t, 50), "p99": percentile(t, 99), "frames": len(t)} for n, t in warm.items()
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=FIXTURES_DIR / "mot17-mini" / "train")
    parser.add_argument("--objects", type=int, default=50, help="Objects in the synthetic timing scene.")
    parser.add_argument("--frames", type=int, default=1000, help="Frames in the synthetic timing scene.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tracker_comparison.json"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_offline(STATE_DIR)
    console = Console()
    sequences = sorted(p for p in args.data.iterdir() if (p / "gt" / "gt.txt").is_file())
    work = Path(tempfile.mkdtemp(prefix="tracker-comparison-"))
    package = work / "yolox_nano"
    package_onnx(FIXTURES_DIR / "models/yolox_nano/yolox_nano.onnx", package, "yolox", COCO80_NAMES)
    detector = load_detector(package, DetectorSettings(score_threshold=0.1, num_threads=2))
    sources: dict[str, dict[str, list[Detections]]] = {"public_det": {}, "yolox_nano": {}}
    with Progress(console=console) as progress:
        task = progress.add_task("detect", total=len(sequences))
        for seq in sequences:
            images = list_images([seq / "img1"])
            det_file = seq / "det" / "det.txt"
            sources["public_det"][seq.name] = mot_detections_by_frame(
                read_mot_file(det_file), det_file, len(images)
            )
            sources["yolox_nano"][seq.name] = yolox_frames(images, detector)
            progress.advance(task)
    accuracy: dict[str, Any] = {}
    update_ms: dict[str, dict[str, Any]] = {}
    for source, per_seq in sources.items():
        accuracy[source] = {}
        for name in (*TRACKERS, WITH_IMAGES):
            specs, times = [], []
            for seq in sequences:
                tracked, seq_times = run_sequence(name, per_seq[seq.name], list_images([seq / "img1"]))
                times += seq_times
                pred = work / source / name / f"{seq.name}.txt"
                write_tracks(pred, tracked)
                specs.append(MotSequence(seq.name, seq / "gt" / "gt.txt", pred, len(per_seq[seq.name])))
            evaluation = evaluate_mot(specs, benchmark="MOT17")
            accuracy[source][name] = dataclasses.asdict(evaluation)
            update_ms.setdefault(source, {})[name] = {
                "p50": percentile(np.array(times), 50),
                "frames": len(times),
            }
    synthetic = synthetic_timing(args.objects, args.frames, turn=50)
    report = {
        "command": shlex.join(sys.argv),
        **environment(),
        "settings": {
            "sequences": [s.name for s in sequences],
            "yolox_score_threshold": 0.1,
            "synthetic_objects": args.objects,
            "synthetic_frames": args.frames,
            "tracker_defaults": "each library's own",
        },
        "goals": GOALS,
        "accuracy": accuracy,
        "update_ms_real": update_ms,
        "update_ms_synthetic": synthetic,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(summary_table(accuracy, update_ms, synthetic))
    console.print(f"wrote {args.out}")
    return 0


def summary_table(accuracy: dict[str, Any], update_ms: dict[str, Any], synthetic: dict[str, Any]) -> Table:
    table = Table(
        "detections", "tracker", "HOTA", "MOTA", "IDF1", "IDSW", "update ms p50 (real)", "p50 @50 obj"
    )
    for source, by_tracker in accuracy.items():
        for name, result in by_tracker.items():
            combined = result["combined"]
            table.add_row(
                source,
                name,
                f"{combined['hota']:.4f}",
                f"{combined['mota']:.4f}",
                f"{combined['idf1']:.4f}",
                str(combined["idsw"]),
                f"{update_ms[source][name]['p50']:.3f}",
                f"{synthetic[name]['p50']:.3f}" if name in synthetic else "",
            )
    return table


if __name__ == "__main__":
    sys.exit(main())
