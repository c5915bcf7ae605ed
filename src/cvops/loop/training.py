"""Training step of the loop: fine-tune the champion (or start from a config) with DDP."""

from __future__ import annotations

from pathlib import Path

from cvops.offline import default_state_dir
from cvops.training.ddp import DdpTrainConfig, DdpTrainSummary, check_model_source, resolve_data_yaml

FIRST_MODEL_CONFIG = "yolov8n.yaml"


def base_model_source(model_name: str, tracking_uri: str | None, fallback: str = FIRST_MODEL_CONFIG) -> str:
    """Return the champion's ``models:/`` URI when there is a champion, else ``fallback``."""
    from cvops.errors import RegistryNotFoundError
    from cvops.registry.mlflow_registry import CHAMPION, ModelRegistry

    try:
        ModelRegistry(tracking_uri).show(model_name, CHAMPION)
    except RegistryNotFoundError:
        return fallback
    return f"models:/{model_name}@{CHAMPION}"


def fine_tune(
    dataset_root: Path,
    out_dir: Path,
    model_name: str,
    tracking_uri: str | None = None,
    epochs: int = 10,
    imgsz: int = 160,
    batch: int = 16,
    nproc: int = 2,
    seed: int = 0,
) -> DdpTrainSummary:
    """Fine-tune ``model_name``'s champion on the dataset in ``dataset_root`` (a config when none).

    Per-epoch metrics go to MLflow at ``tracking_uri`` (the embedded store when None), so the
    run id lands in the new version's lineage.

    Args:
        dataset_root: Folder with the Ultralytics ``data.yaml``.
        out_dir: Run folder (weights, logs, summary).
        model_name: Registered model name whose champion is fine-tuned.
        tracking_uri: MLflow tracking URI.
        epochs: Epochs.
        imgsz: Image size in pixels, a multiple of 32.
        batch: Global batch over all ranks.
        nproc: Ranks (gloo on CPU, NCCL on GPU).
        seed: Seed of shuffling and augmentation.
    """
    from cvops.registry.mlflow_registry import ModelRegistry
    from cvops.training.ddp import train_ddp

    uri = ModelRegistry(tracking_uri).tracking_uri
    source = check_model_source(base_model_source(model_name, uri), uri)
    config = DdpTrainConfig(
        data_yaml=resolve_data_yaml(dataset_root),
        model=source,
        out_dir=out_dir,
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        nproc=nproc,
        seed=seed,
        tracking_uri=uri,
        close_mosaic=min(epochs // 2, 10),
        warmup_epochs=min(3.0, epochs / 3),
    )
    return train_ddp(config, default_state_dir())
