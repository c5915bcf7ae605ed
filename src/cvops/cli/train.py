"""``cvops train``: fine-tune a detector on N data-parallel ranks (torchrun, gloo on CPU, nccl on GPU)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

from cvops.cli.app import app, state_dir
from cvops.training.ddp import (
    DdpTrainConfig,
    ProgressView,
    check_model_source,
    resolve_data_yaml,
    train_ddp,
)


class OptimizerName(StrEnum):
    """Optimizers ``cvops train`` can use."""

    adamw = "adamw"
    sgd = "sgd"


class DeviceName(StrEnum):
    """Where the ranks run."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


# The defaults live in DdpTrainConfig; an instance makes them readable here.
_DEFAULTS = DdpTrainConfig(data_yaml=Path("data.yaml"), model="yolov8n.yaml", out_dir=Path("runs"))


@app.command()
def train(
    data: Path = typer.Option(
        ..., "--data", "-d", help="Dataset: an Ultralytics data.yaml, or a folder with one."
    ),
    model: str = typer.Option(
        ...,
        "--model",
        "-m",
        help="Checkpoint (.pt) or registered model (models:/NAME@ALIAS) to fine-tune, or a config (.yaml).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: weights/, logs/, summary.json."),
    nproc: int = typer.Option(_DEFAULTS.nproc, min=1, help="Ranks (processes); on GPU one per device."),
    epochs: int = typer.Option(
        _DEFAULTS.epochs, min=1, help="Total epochs (a resumed run continues to this)."
    ),
    imgsz: int = typer.Option(_DEFAULTS.imgsz, min=32, help="Image size in pixels, a multiple of 32."),
    batch: int = typer.Option(_DEFAULTS.batch, min=1, help="Global batch: images per step over all ranks."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/weights/last.pt."),
    patience: int = typer.Option(
        _DEFAULTS.patience, min=1, help="Stop after this many epochs without a better mAP50-95."
    ),
    seed: int = typer.Option(
        _DEFAULTS.seed, min=0, help="Seed of the initial weights, shuffling and augmentation."
    ),
    tracking_uri: str | None = typer.Option(
        None, help="MLflow tracking URI for per-epoch metrics (off when unset) and models:/ URIs."
    ),
    experiment: str = typer.Option(_DEFAULTS.experiment, help="MLflow experiment name."),
    threads_per_rank: int = typer.Option(_DEFAULTS.threads_per_rank, min=1, help="CPU threads of each rank."),
    optimizer: OptimizerName = typer.Option(OptimizerName(_DEFAULTS.optimizer), help="Optimizer."),
    lr0: float | None = typer.Option(None, help="Initial learning rate (default: Ultralytics' choice)."),
    device: DeviceName = typer.Option(
        DeviceName(_DEFAULTS.device), help="cuda needs a GPU per rank; auto uses them where there are."
    ),
    workers: int = typer.Option(_DEFAULTS.workers, min=0, help="Data-loader worker processes per rank."),
) -> None:
    """Train with a plain PyTorch DDP loop around Ultralytics' model, loss and data loaders.

    Rank 0 validates every epoch; mAP50-95 picks best.pt and drives --patience. OUT/weights/last.pt
    and best.pt load with Ultralytics and cvops export; OUT/summary.json sums the run up.
    """
    config = DdpTrainConfig(
        data_yaml=resolve_data_yaml(data),
        model=check_model_source(model, tracking_uri),
        out_dir=out.resolve(),
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        nproc=nproc,
        threads_per_rank=threads_per_rank,
        seed=seed,
        patience=patience,
        resume=resume,
        tracking_uri=tracking_uri,
        experiment=experiment,
        optimizer=optimizer.value,
        lr0=lr0,
        device=device.value,
        workers=workers,
    )
    console = Console(stderr=True)
    with ProgressView(console) as view:
        summary = train_ddp(config, state_dir(), on_event=view)
    final, best = summary.final, summary.best
    console.print(
        f"trained {summary.epochs_completed - summary.start_epoch} epochs on {summary.world_size} ranks "
        f"({summary.backend}, global batch {summary.global_batch}) in {summary.total_time_s:.1f} s, "
        f"{summary.mean_epoch_time_s:.2f} s/epoch; final mAP50-95 {final.map50_95:.3f} "
        f"mAP50 {final.map50:.3f}; best mAP50-95 {best.map50_95:.3f} (epoch {best.epoch + 1})"
        + (" [stopped early]" if summary.is_stopped_early else ""),
        highlight=False,
    )
    console.print(f"wrote {summary.best_checkpoint}, {summary.last_checkpoint}, {out / 'summary.json'}")
