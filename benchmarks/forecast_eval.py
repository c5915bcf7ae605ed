"""Trajectory forecasting on real pedestrian ground truth: ADE/FDE of four forecasters.

Constant position (the last box), the constant-velocity Kalman baseline (ByteTrack noise), a
damped-acceleration Kalman filter and a ridge model of displacements, on the GT tracks of
MOT15 TUD-Campus, TUD-Stadtmitte and the 4-8 frame MOT17-mini sequences. The ridge model never
sees the sequence it is scored on: each TUD sequence is scored by the model fit on the other one,
MOT17-mini by the model fit on both TUD sequences. The JSON's ``settings`` say what a sample is.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from detector_latency import FIXTURES_DIR, environment
from rich.console import Console
from rich.table import Table

from cvops.tracking.forecast import (
    ConstantPositionForecaster,
    ConstantVelocityForecaster,
    DampedAccelerationForecaster,
    Forecaster,
    RidgeForecaster,
)
from cvops.tracking.forecast_eval import TrackSegment, forecast_errors, forecast_samples, read_track_segments

TUD = ("TUD-Campus", "TUD-Stadtmitte")
MOT17 = "mot17-mini"
BASELINES = ("constant_position", "constant_velocity")


def load_datasets() -> tuple[dict[str, list[TrackSegment]], dict[str, Any], dict[str, list[TrackSegment]]]:
    """Return segments per dataset, what each holds, and the MOT17-mini segments per sequence."""
    datasets: dict[str, list[TrackSegment]] = {}
    described: dict[str, Any] = {}
    for name in TUD:
        path = FIXTURES_DIR / "mot15-tud" / name / "gt.txt"
        datasets[name] = read_track_segments(path)
        described[name] = describe([path], datasets[name])
    paths = sorted((FIXTURES_DIR / MOT17 / "train").glob("*/gt/gt.txt"))
    if not paths:
        raise SystemExit(f"no MOT17-mini gt files under {FIXTURES_DIR / MOT17} (set CVOPS_FIXTURES)")
    per_sequence = {path.parents[1].name: read_track_segments(path) for path in paths}
    datasets[MOT17] = [segment for segments in per_sequence.values() for segment in segments]
    described[MOT17] = describe(paths, datasets[MOT17])
    described[MOT17]["frames_per_sequence"] = {
        name: max(s.first_frame + len(s.boxes_cxcywh) - 1 for s in segments)
        for name, segments in per_sequence.items()
    }
    return datasets, described, per_sequence


def describe(paths: Sequence[Path], segments: Sequence[TrackSegment]) -> dict[str, Any]:
    return {
        "gt_files": [str(path.relative_to(FIXTURES_DIR)) for path in paths],
        "segments": len(segments),
        "boxes": int(sum(len(s.boxes_cxcywh) for s in segments)),
        "longest_segment_frames": max(len(s.boxes_cxcywh) for s in segments),
    }


def forecasters_for(
    dataset: str, datasets: dict[str, list[TrackSegment]], max_horizon: int
) -> tuple[dict[str, Forecaster], str]:
    """Return the forecasters scored on ``dataset`` and which data the ridge model was fit on."""
    train = [name for name in TUD if name != dataset]  # MOT17-mini: both TUD sequences
    tracks = [segment.boxes_cxcywh for name in train for segment in datasets[name]]
    models: dict[str, Forecaster] = {
        "constant_position": ConstantPositionForecaster(),
        "constant_velocity": ConstantVelocityForecaster(),
        "damped_acceleration": DampedAccelerationForecaster(),
        "ridge": RidgeForecaster.fit(tracks, max_horizon=max_horizon),
    }
    return models, "+".join(train)


def evaluate(
    datasets: dict[str, list[TrackSegment]],
    horizons: dict[str, list[int]],
    min_history: int,
    max_history: int,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    rows: list[dict[str, Any]] = []
    ridge_fit_on: dict[str, str] = {}
    for dataset, segments in datasets.items():
        models, ridge_fit_on[dataset] = forecasters_for(dataset, datasets, max(horizons[dataset]))
        for horizon in horizons[dataset]:
            samples = forecast_samples(segments, horizon, min_history, max_history)
            scores = {name: forecast_errors(model, samples) for name, model in models.items()}
            lengths = [int(samples.lengths.min()), int(samples.lengths.max())] if len(samples) else None
            for name, errors in scores.items():
                values = {
                    k: round(v, 5) if isinstance(v, float) else v
                    for k, v in dataclasses.asdict(errors).items()
                }
                row = {"dataset": dataset, "model": name, **values, "history_frames": lengths}
                for baseline in BASELINES:
                    for metric in ("ade_norm", "fde_norm"):
                        row[f"{metric}_vs_{baseline}"] = ratio(errors, scores[baseline], metric)
                rows.append(row)
    return rows, ridge_fit_on


def ratio(errors: Any, baseline: Any, metric: str) -> float | None:
    mine, theirs = getattr(errors, metric), getattr(baseline, metric)
    return None if mine is None or not theirs else round(mine / theirs, 3)


def forecast_cost_us(models: dict[str, Forecaster], tracks: int = 100, history: int = 30) -> dict[str, Any]:
    """Time one ``forecast`` call and one ``forecast_batch`` over ``tracks`` ragged histories."""
    rng = np.random.default_rng(0)
    histories = (np.cumsum(rng.normal(0, 2, (tracks, history, 4)), axis=1) + 300).astype(np.float32)
    lengths = rng.integers(1, history + 1, tracks)
    costs: dict[str, Any] = {}
    for name, model in models.items():
        model.forecast(histories[0], 5)  # first call computes and keeps the weights
        model.forecast_batch(histories, 5, lengths)
        single = timed(lambda m=model: m.forecast(histories[0], 5), 2000)
        batch = timed(lambda m=model: m.forecast_batch(histories, 5, lengths), 200)
        costs[name] = {"single_us_p50": single, "batch_us_per_track_p50": round(batch / tracks, 3)}
    return costs


def timed(call: Any, runs: int) -> float:
    samples = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        call()
        samples[i] = time.perf_counter() - start
    return round(float(np.median(samples)) * 1e6, 2)


def render_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Forecast errors (ADE/FDE in pixels and in last-box heights; ratios on the latter)")
    columns = ["dataset", "h", "model", "n", "ADE px", "FDE px", "ADE/h", "FDE/h", "ADE vs pos", "ADE vs vel"]
    columns += ["FDE vs vel"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("dataset", "model") else "right")
    for row in rows:
        table.add_row(
            row["dataset"],
            str(row["horizon"]),
            row["model"],
            str(row["samples"]),
            *(fmt(row[k], 2) for k in ("ade_px", "fde_px")),
            *(fmt(row[k], 4) for k in ("ade_norm", "fde_norm")),
            *(fmt(row[k], 3) for k in ("ade_norm_vs_constant_position", "ade_norm_vs_constant_velocity")),
            fmt(row["fde_norm_vs_constant_velocity"], 3),
        )
    return table


def fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizons", type=int, nargs="+", default=[5, 10], help="frames ahead (TUD)")
    parser.add_argument(
        "--mot17-horizons",
        type=int,
        nargs="+",
        default=[3, 5, 10],
        help="frames ahead (MOT17-mini: 4-8 frames)",
    )
    parser.add_argument("--min-history", type=int, default=2, help="fewest boxes seen before a forecast")
    parser.add_argument("--max-history", type=int, default=30, help="most boxes handed to a forecaster")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/forecast_eval.json"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    console = Console()
    console.width = max(console.width, 140)
    datasets, described, mot17_sequences = load_datasets()
    horizons = {name: args.horizons for name in TUD} | {MOT17: args.mot17_horizons}
    described[MOT17]["samples_per_sequence"] = {
        horizon: {
            name: len(forecast_samples(segments, horizon, args.min_history, args.max_history))
            for name, segments in mot17_sequences.items()
        }
        for horizon in args.mot17_horizons
    }
    rows, ridge_fit_on = evaluate(datasets, horizons, args.min_history, args.max_history)
    models, _ = forecasters_for(MOT17, datasets, max(args.horizons + args.mot17_horizons))
    settings = {
        "datasets": described,
        "horizons": horizons,
        "min_history": args.min_history,
        "max_history": args.max_history,
        "sample": "every (id, frame t) with >= min_history consecutive boxes up to t and boxes at t+1..t+h",
        "gt_filter": "MOT15 (10 columns): conf != 0; MOT17 (9 columns): conf_flag == 1 and class == 1",
        "ade": "mean center error over steps 1..h; fde: at step h; *_norm: divided by the last box height",
        "models": {
            name: repr(model) if name != "ridge" else "RidgeForecaster.fit(...)"
            for name, model in models.items()
        },
        "ridge": "RidgeForecaster.fit(max_displacements=10, regularization=1.0), prior: constant_velocity",
        "ridge_fit_on": ridge_fit_on,
        "damped_acceleration_defaults": (
            "picked on TUD-Campus + TUD-Stadtmitte (4 noise x 4 damping values): its TUD rows are in-sample"
        ),
    }
    report = {"command": shlex.join(["python", *sys.argv]), **environment(), "settings": settings}
    report |= {"results": rows, "forecast_cost_us": forecast_cost_us(models)}
    report["runtime_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(render_table(rows))
    console.print({"forecast_cost_us": report["forecast_cost_us"], "ridge_fit_on": ridge_fit_on})
    console.print(f"wrote {args.out} in {report['runtime_s']} s")


if __name__ == "__main__":
    main()
