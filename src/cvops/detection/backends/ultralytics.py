"""The Ultralytics PyTorch runtime: the reference every faster path is compared with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from cvops.config import DetectorSettings
from cvops.detection.types import Detections

ImageArray = npt.NDArray[np.uint8]

# Integrations Ultralytics enables by default; each either phones home or writes run logs.
_QUIET_SETTINGS = {
    "sync": False,
    "mlflow": False,
    "tensorboard": False,
    "wandb": False,
    "clearml": False,
    "comet": False,
    "dvc": False,
    "neptune": False,
    "raytune": False,
    "vscode_msg": False,
    "openvino_msg": False,
}


def configure_ultralytics() -> None:
    """Turn off Ultralytics' telemetry and logging integrations (after ``configure_offline``)."""
    from ultralytics import settings

    # Keys differ between releases; set the ones this release knows.
    settings.update({key: value for key, value in _QUIET_SETTINGS.items() if key in settings})


class UltralyticsDetector:
    """Runs ``YOLO.predict`` on a checkpoint and returns cvops Detections."""

    def __init__(self, checkpoint: str, imgsz: int = 640, settings: DetectorSettings | None = None) -> None:
        """Load a ``.pt`` checkpoint (or build from a ``.yaml``) with Ultralytics.

        Args:
            checkpoint: Checkpoint path or model config.
            imgsz: Inference size passed to ``predict``.
            settings: Thresholds (``conf``, ``iou``, ``max_det``) and torch threads.
        """
        import torch

        from cvops.training.export import load_ultralytics

        configure_ultralytics()
        self.settings = settings or DetectorSettings()
        if self.settings.num_threads:
            torch.set_num_threads(self.settings.num_threads)
        self.model: Any = load_ultralytics(checkpoint)
        self.imgsz = imgsz
        names = self.model.names
        self._class_names = tuple(names[i] for i in sorted(names))
        self.last_speed_ms: dict[str, float] = {}

    @property
    def class_names(self) -> tuple[str, ...]:
        """Return the class names, indexed by class id."""
        return self._class_names

    def detect(
        self, images: Sequence[ImageArray], settings: DetectorSettings | None = None
    ) -> list[Detections]:
        """Detect objects in BGR images with ``YOLO.predict``; keeps its speed split."""
        if not images:
            return []
        chosen = settings or self.settings
        results = self.model.predict(
            list(images),
            imgsz=self.imgsz,
            conf=chosen.score_threshold,
            iou=chosen.iou_threshold,
            max_det=chosen.max_det,
            verbose=False,
        )
        self.last_speed_ms = dict(results[0].speed)
        return [
            Detections.from_arrays(
                r.boxes.xyxy.cpu().numpy(),
                r.boxes.conf.cpu().numpy(),
                r.boxes.cls.cpu().numpy().astype(np.int64),
                self._class_names,
            )
            for r in results
        ]
