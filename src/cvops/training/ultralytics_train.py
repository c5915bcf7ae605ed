"""Single-process fine-tuning with Ultralytics' own trainer."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from cvops.errors import InvalidInputError

logger = logging.getLogger(__name__)


def train_ultralytics(
    data_yaml: Path,
    model: str,
    out_dir: Path,
    epochs: int,
    imgsz: int,
    batch: int = 16,
    seed: int = 0,
    overrides: Mapping[str, object] | None = None,
) -> Path:
    """Train a checkpoint or config on a YOLO-format dataset and return ``last.pt``.

    Args:
        data_yaml: Ultralytics dataset file.
        model: Starting checkpoint (``.pt``) or config (``.yaml``, random weights).
        out_dir: Folder for the run (weights under ``train/weights``).
        epochs: Epochs to train.
        imgsz: Training image size in pixels.
        batch: Images per step.
        seed: Seed; with ``deterministic`` on, the same seed gives the same weights.
        overrides: Further Ultralytics training arguments (``lr0``, ``mosaic``, ...).
    """
    import torch

    from cvops.detection.backends.ultralytics import configure_ultralytics
    from cvops.training.export import load_ultralytics

    if not data_yaml.is_file():
        raise InvalidInputError(f"{data_yaml}: no such dataset file")
    configure_ultralytics()
    torch.manual_seed(seed)
    yolo = load_ultralytics(model)
    yolo.train(
        data=str(data_yaml),
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        workers=0,
        project=str(out_dir.resolve()),
        name="train",
        exist_ok=True,
        seed=seed,
        deterministic=True,
        val=False,
        plots=False,
        amp=False,
        verbose=False,
        **dict(overrides or {}),
    )
    weights = out_dir.resolve() / "train" / "weights" / "last.pt"
    logger.info("trained %s for %d epochs: %s", model, epochs, weights)
    return weights
