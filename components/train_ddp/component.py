"""Fine-tune the champion (or start from a config) with DDP on the grown dataset."""

from typing import NamedTuple

from kfp import dsl

from components import CVOPS_IMAGE


@dsl.component(base_image=CVOPS_IMAGE, install_kfp_package=False)
def train_ddp(
    dataset: dsl.Input[dsl.Dataset],
    model_name: str,
    tracking_uri: str,
    epochs: int,
    imgsz: int,
    batch: int,
    nproc: int,
    seed: int,
    run: dsl.Output[dsl.Model],
    metrics: dsl.Output[dsl.Metrics],
) -> NamedTuple("TrainOutputs", [("checkpoint_path", str), ("mlflow_run_id", str)]):  # type: ignore[valid-type]  # KFP reads this form
    """Train on ``dataset`` with ``nproc`` ranks; ``run`` holds weights/best.pt, logs and summary.json."""
    from collections import namedtuple
    from pathlib import Path

    from cvops.loop.training import fine_tune

    summary = fine_tune(
        Path(dataset.path),
        Path(run.path),
        model_name,
        tracking_uri or None,
        epochs,
        imgsz,
        batch,
        nproc,
        seed,
    )
    for key in ("map50_95", "map50", "precision", "recall"):
        metrics.log_metric(f"val_{key}", getattr(summary.best, key))
    metrics.log_metric("train_time_s", summary.total_time_s)
    TrainOutputs = namedtuple("TrainOutputs", ["checkpoint_path", "mlflow_run_id"])
    return TrainOutputs(summary.best_checkpoint, summary.mlflow_run_id or "")
