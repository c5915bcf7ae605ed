"""Frozen configuration objects; defaults live here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass

from cvops.errors import InvalidInputError


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """How a detector filters its output and how many CPU threads its runtime uses.

    Attributes:
        score_threshold: Drop boxes scoring at or below this (Ultralytics' default ``conf``).
        iou_threshold: NMS IoU above which the lower-scoring box of a class is dropped.
        max_det: Keep at most this many boxes per image.
        num_threads: Intra-op threads of the runtime (0 lets the runtime choose).
        device_id: GPU ordinal for the CUDA and TensorRT providers (ignored on CPU).
    """

    score_threshold: float = 0.25
    iou_threshold: float = 0.7
    max_det: int = 300
    num_threads: int = 0
    device_id: int = 0

    def __post_init__(self) -> None:
        """Reject out-of-range values with what was expected."""
        for name in ("score_threshold", "iou_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"{name}: expected a value in [0, 1], got {value}")
        if self.max_det < 1:
            raise InvalidInputError(f"max_det: expected >= 1, got {self.max_det}")
        if self.num_threads < 0:
            raise InvalidInputError(f"num_threads: expected >= 0, got {self.num_threads}")
        if self.device_id < 0:
            raise InvalidInputError(f"device_id: expected >= 0, got {self.device_id}")
