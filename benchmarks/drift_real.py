"""Data drift on real frames: drift shares of ``cvops.monitoring.detect_drift`` per scenario.

Scenarios, all with the real YOLOX-nano of the fixtures for the score/box features:

- ``bikes.mp4`` (every 2nd frame, 125 frames): even frames are the reference; odd frames are the
  same-distribution window; the odd frames with brightness, blur and noise perturbations of
  several strengths are the drifted windows (how weak a change is still caught).
- MOT17-mini: even vs odd frames of each sequence (no drift expected), and pairs of different
  sequences (drift expected).

Each row records the drift share, the verdict, the drifted features and the seconds the check
took (tables + Evidently reports + MMD); ``reports_only_s`` times a check on precomputed
tables (two Evidently reports with HTML + the MMD test), ``evidently_import_s`` the first import.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detector_latency import FIXTURES_DIR, environment
from rich.console import Console
from rich.table import Table

from cvops.detection.coco import COCO80_NAMES
from cvops.detection.detector import Detector
from cvops.detection.loader import load_detector
from cvops.detection.packaging import package_onnx
from cvops.monitoring.drift import detect_drift
from cvops.monitoring.perturb import Perturbation, perturb_frames, write_video_frames
from cvops.monitoring.results import DriftSettings
from cvops.monitoring.tables import build_feature_tables, write_feature_tables

PERTURBATIONS: tuple[tuple[Perturbation, float], ...] = (
    ("brightness", 10.0),
    ("brightness", 25.0),
    ("brightness", -50.0),
    ("blur", 1.0),
    ("blur", 2.0),
    ("noise", 4.0),
    ("noise", 12.0),
)
MOT_PAIRS = (
    ("MOT17-04-FRCNN", "MOT17-05-FRCNN"),
    ("MOT17-02-FRCNN", "MOT17-09-FRCNN"),
    ("MOT17-10-FRCNN", "MOT17-13-FRCNN"),
)


def write_list(path: Path, frames: Sequence[Path]) -> Path:
    path.write_text("".join(f"{frame}\n" for frame in frames), encoding="utf-8")
    return path


def check(
    name: str, expected: bool, reference: Path, current: Path, out: Path, detector: Detector
) -> dict[str, Any]:
    started = time.perf_counter()
    result = detect_drift(
        reference, current, out, detector=detector, current_label=name, settings=DriftSettings()
    )
    seconds = time.perf_counter() - started
    return {
        "scenario": name,
        "drift_expected": expected,
        "drift_share": round(result.drift_share, 3),
        "is_drifted": result.is_drifted,
        "correct": result.is_drifted == expected,
        "drifted_features": list(result.drifted_features),
        "scores": {f.feature: float(f"{f.score:.3g}") for f in result.features},
        "reference_frames": result.reference_frames,
        "current_frames": result.current_frames,
        "check_s": round(seconds, 2),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stride", type=int, default=2, help="use every n-th frame of bikes.mp4")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "drift_real.json")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    import evidently.presets  # noqa: F401  (timed: the first report pays for it)

    evidently_import_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="drift_real_") as folder:
        work = Path(folder)
        package = work / "yolox"
        package_onnx(FIXTURES_DIR / "models/yolox_nano/yolox_nano.onnx", package, "yolox", COCO80_NAMES)
        detector = load_detector(package)
        (work / "bikes").mkdir()
        frames = write_video_frames(FIXTURES_DIR / "video/bikes.mp4", work / "bikes", args.stride)
        reference = work / "bikes_reference"
        started = time.perf_counter()
        write_feature_tables(build_feature_tables(frames[0::2], detector), reference)
        reference_table_s = time.perf_counter() - started
        current = frames[1::2]
        rows.append(
            check(
                "bikes odd frames",
                False,
                reference,
                write_list(work / "odd.txt", current),
                work / "o0",
                detector,
            )
        )
        for i, (kind, strength) in enumerate(PERTURBATIONS):
            perturbed = work / f"{kind}_{strength:g}"
            perturb_frames(current, perturbed, kind, strength, seed=i)
            rows.append(
                check(f"bikes {kind} {strength:+g}", True, reference, perturbed, work / f"o{i + 1}", detector)
            )
        train = FIXTURES_DIR / "mot17-mini/train"
        for sequence in sorted(p.name for p in train.iterdir()):
            images = sorted((train / sequence / "img1").glob("*.jpg"))
            even = write_list(work / f"{sequence}_even.txt", images[0::2])
            odd = write_list(work / f"{sequence}_odd.txt", images[1::2])
            rows.append(check(f"{sequence} even vs odd", False, even, odd, work / f"s_{sequence}", detector))
        for a, b in MOT_PAIRS:
            rows.append(
                check(
                    f"{a} vs {b}", True, train / a / "img1", train / b / "img1", work / f"p_{a}_{b}", detector
                )
            )
        started = time.perf_counter()
        detect_drift(reference, reference, work / "self")  # tables read, reports only
        reports_only_s = time.perf_counter() - started
    report = {
        "command": shlex.join(["python", *sys.argv]),
        **environment(),
        "settings": {"bikes_stride": args.stride, "drift": DriftSettings().__repr__()},
        "evidently_import_s": round(evidently_import_s, 2),
        "reference_table_s": round(reference_table_s, 2),
        "reports_only_s": round(reports_only_s, 2),
        "scenarios": rows,
        "correct": sum(r["correct"] for r in rows),
        "total": len(rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    table = Table(title="drift on real frames")
    for column in ("scenario", "expected", "share", "drifted", "features", "s"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["scenario"],
            str(r["drift_expected"]),
            f"{r['drift_share']:.2f}",
            str(r["is_drifted"]),
            ", ".join(r["drifted_features"]),
            f"{r['check_s']:.1f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
