"""DDP scaling on CPU: 1 rank x 2 threads vs 2 ranks x 1 thread, same data, global batch and epochs.

Both configurations train yolov8n (from ``yolov8n.yaml``, seed 0) on the same synthetic dataset
through :func:`cvops.training.ddp.train_ddp` (torchrun, gloo); only the split of the two cores
differs. Reported per configuration: time per epoch (training and rank-0 validation, checkpoint
writing excluded; the first epoch, which pays one-time costs, is left out of the median), the
whole training and the launcher's wall time (process start included), and the final and best
validation mAP50-95 / mAP50. Goals: ``speedup_epoch`` (1x2 epoch time / 2x1 epoch time) >= 1.7,
and final mAP50-95 within 0.05 of each other. ``other_processes_cpu_s`` > 0 means other processes
shared the cores: rerun on an idle machine before believing a speedup."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detector_latency import REPO_ROOT, STATE_DIR, cpu_seconds, environment
from rich.console import Console
from rich.table import Table

from cvops.data.synthetic import generate_scenes
from cvops.offline import configure_offline
from cvops.training.ddp import DdpTrainConfig, ProgressView, train_ddp

CONFIGURATIONS = {"1x2": (1, 2), "2x1": (2, 1)}  # name -> (ranks, threads per rank)
GOALS = {"speedup_min": 1.7, "map50_95_abs_diff_max": 0.05}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="epochs per run")
    parser.add_argument("--train-images", type=int, default=160, help="synthetic training images")
    parser.add_argument("--val-images", type=int, default=40, help="synthetic validation images")
    parser.add_argument("--imgsz", type=int, default=160, help="image size (multiple of 32)")
    parser.add_argument("--batch", type=int, default=16, help="global batch, the same for both")
    parser.add_argument("--model", default="yolov8n.yaml", help="model config or checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, init and shuffling")
    parser.add_argument("--repeats", type=int, default=1, help="runs per configuration (order alternates)")
    parser.add_argument(
        "--ultralytics-baseline",
        action="store_true",
        help="also time Ultralytics' own trainer (1 process x 2 threads) on the same data",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ddp_scaling.json"))
    return parser.parse_args(argv)


def run_once(config: DdpTrainConfig, console: Console) -> dict[str, Any]:
    """Train once; return its timings and metrics, with the CPU other processes used meanwhile."""
    busy_start_s, own_start_s = cpu_seconds()
    children_start_s = sum(os.times()[2:4])
    start = time.perf_counter()
    with ProgressView(console) as view:
        summary = train_ddp(config, STATE_DIR, on_event=view)
    wall_s = time.perf_counter() - start
    busy_s, own_s = cpu_seconds()
    own_s += sum(os.times()[2:4]) - children_start_s  # the ranks, once torchrun has waited for them
    later = summary.epochs[1:] or summary.epochs
    return {
        "ranks": summary.world_size,
        "threads_per_rank": summary.threads_per_rank,
        "epochs": summary.epochs_completed,
        "epoch_s_median": round(statistics.median(r.epoch_time_s for r in later), 3),
        "train_s_median": round(statistics.median(r.train_time_s for r in later), 3),
        "val_s_median": round(statistics.median(r.val_time_s for r in later), 3),
        "first_epoch_s": round(summary.epochs[0].epoch_time_s, 3),
        "training_total_s": round(summary.total_time_s, 2),
        "launcher_wall_s": round(wall_s, 2),
        "final_map50_95": round(summary.final.map50_95, 4),
        "final_map50": round(summary.final.map50, 4),
        "best_map50_95": round(summary.best.map50_95, 4),
        "is_state_identical_across_ranks": summary.is_state_identical_across_ranks,
        "epoch_s": [round(r.epoch_time_s, 3) for r in summary.epochs],
        "map50_95_per_epoch": [round(r.map50_95, 4) for r in summary.epochs],
        "cpu_s": round(own_s - own_start_s, 1),
        "other_processes_cpu_s": round(max(busy_s - busy_start_s - (own_s - own_start_s), 0.0), 1),
    }


def run_ultralytics(data_yaml: Path, out_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Ultralytics' own trainer, one process x 2 threads, validating every epoch (its results.csv)."""
    import csv

    import torch
    from ultralytics import YOLO

    from cvops.detection.backends.ultralytics import configure_ultralytics

    configure_ultralytics()
    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    YOLO(args.model).train(
        data=str(data_yaml), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, workers=0,
        project=str(out_dir), name="train", exist_ok=True, seed=args.seed, deterministic=True,
        val=True, plots=False, amp=False, verbose=False,
    )  # fmt: skip
    wall_s = time.perf_counter() - start
    with (out_dir / "train" / "results.csv").open() as rows:
        results = list(csv.DictReader(rows))
    ends = [float(r["time"]) for r in results]  # seconds since training started, at each epoch's end
    epoch_s = [ends[0]] + [b - a for a, b in itertools.pairwise(ends)]
    last = results[-1]
    return {
        "ranks": 1,
        "threads_per_rank": 2,
        "epochs": len(results),
        "epoch_s_median": round(statistics.median(epoch_s[1:] or epoch_s), 3),
        "training_total_s": round(ends[-1], 2),
        "launcher_wall_s": round(wall_s, 2),
        "final_map50_95": round(float(last["metrics/mAP50-95(B)"]), 4),
        "final_map50": round(float(last["metrics/mAP50(B)"]), 4),
        "epoch_s": [round(t, 3) for t in epoch_s],
    }


def compare(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Speedups of 2x1 over 1x2 (median over repeats) and whether the goals are met."""

    def median(name: str, key: str) -> float:
        return float(statistics.median(run[key] for run in runs[name]))

    speedup = median("1x2", "epoch_s_median") / median("2x1", "epoch_s_median")
    train_speedup = median("1x2", "train_s_median") / median("2x1", "train_s_median")
    total_speedup = median("1x2", "training_total_s") / median("2x1", "training_total_s")
    wall_speedup = median("1x2", "launcher_wall_s") / median("2x1", "launcher_wall_s")
    map_diff = abs(median("1x2", "final_map50_95") - median("2x1", "final_map50_95"))
    return {
        "speedup_epoch": round(speedup, 3),
        "speedup_train_only": round(train_speedup, 3),
        "speedup_training_total": round(total_speedup, 3),
        "speedup_launcher_wall": round(wall_speedup, 3),
        "final_map50_95_abs_diff": round(map_diff, 4),
        "goals": GOALS,
        "goals_met": {
            "speedup": speedup >= GOALS["speedup_min"],
            "same_map": map_diff <= GOALS["map50_95_abs_diff_max"],
        },
    }


def render_table(runs: dict[str, list[dict[str, Any]]]) -> Table:
    table = Table(title="DDP scaling (CPU)")
    columns = ("epoch_s_median", "train_s_median", "val_s_median", "launcher_wall_s", "final_map50_95",
               "final_map50", "other_processes_cpu_s")  # fmt: skip
    for header in ("config", *columns):
        table.add_column(header, justify="right")
    for name, rows in runs.items():
        for row in rows:
            table.add_row(name, *(str(row[c]) for c in columns))
    return table


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    configure_offline(STATE_DIR)
    console = Console()
    console.width = max(console.width, 130)  # the table has 8 columns
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGURATIONS}
    with tempfile.TemporaryDirectory() as tmp:
        dataset = generate_scenes(
            Path(tmp) / "data", args.train_images, args.val_images, args.imgsz, args.seed
        )
        for repeat in range(args.repeats):
            names = list(CONFIGURATIONS) if repeat % 2 == 0 else list(reversed(CONFIGURATIONS))
            for name in names:
                ranks, threads = CONFIGURATIONS[name]
                console.print(f"[bold]{name}[/]: {ranks} rank(s) x {threads} thread(s), run {repeat + 1}")
                config = DdpTrainConfig(
                    data_yaml=dataset.data_yaml, model=args.model, out_dir=Path(tmp) / f"{name}_{repeat}",
                    epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, nproc=ranks,
                    threads_per_rank=threads, seed=args.seed, device="cpu",
                )  # fmt: skip
                runs[name].append(run_once(config, console))
    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    report = {"command": shlex.join(sys.argv), **environment()}
    report["versions"]["git"] = git.stdout.strip()
    report["settings"] = {
        "dataset": f"generate_scenes: {args.train_images} train + {args.val_images} val images, "
        f"{args.imgsz} px, seed {args.seed}",
        "model": args.model,
        "epochs": args.epochs,
        "global_batch": args.batch,
        "configurations": {
            name: {"ranks": r, "threads_per_rank": t} for name, (r, t) in CONFIGURATIONS.items()
        },
        "epoch_s": "training + rank-0 validation, checkpoints excluded; median over epochs 2.. of a run",
        "training_total_s": "all epochs, checkpoint writing included, process start excluded",
        "speedup": "1x2 epoch_s_median / 2x1 epoch_s_median (median over repeats)",
        "other_processes_cpu_s": "CPU time of other processes during the run (> 0: numbers are not clean)",
        "ultralytics_trainer_1x2": "with --ultralytics-baseline: YOLO.train, epoch_s from its results.csv "
        "(training + its validation)",
    }
    report |= {"runs": runs, **compare(runs)}
    if args.ultralytics_baseline:
        console.print("[bold]ultralytics[/]: Ultralytics' trainer, 1 process x 2 threads")
        with tempfile.TemporaryDirectory() as tmp:
            dataset = generate_scenes(
                Path(tmp) / "data", args.train_images, args.val_images, args.imgsz, args.seed
            )
            baseline = run_ultralytics(dataset.data_yaml, Path(tmp) / "ultralytics", args)
        ddp_epoch_s = statistics.median(run["epoch_s_median"] for run in runs["2x1"])
        report["ultralytics_trainer_1x2"] = baseline | {
            "speedup_of_2x1_epoch": round(baseline["epoch_s_median"] / ddp_epoch_s, 3)
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(render_table(runs))
    console.print({k: report[k] for k in ("speedup_epoch", "speedup_train_only", "final_map50_95_abs_diff")})
    console.print({"goals_met": report["goals_met"]})
    own = sum(run["cpu_s"] for rows in runs.values() for run in rows)
    other = sum(run["other_processes_cpu_s"] for rows in runs.values() for run in rows)
    if other > 0.01 * own:
        console.print(f"[red]other processes used {other:.0f} CPU s meanwhile: numbers are not clean")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
