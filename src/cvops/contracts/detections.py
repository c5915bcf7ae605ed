"""JSON contract of detection results: the ``cvops detect`` output and, later, HTTP responses."""

from __future__ import annotations

from typing import Any

import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from cvops.detection.types import Detections


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectionRecord(_Frozen):
    """One box in original-image pixels."""

    xyxy: tuple[float, float, float, float]
    score: float = Field(ge=0.0, le=1.0)
    class_id: int = Field(ge=0)
    class_name: str
    track_id: int | None = None
    global_id: int | None = None
    velocity_xy: tuple[float, float] | None = None
    forecast_xyxy: tuple[float, float, float, float] | None = None


class ImageDetections(_Frozen):
    """All detections of one image, with where they came from."""

    source: str
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    model: str
    detections: list[DetectionRecord]

    @classmethod
    def from_detections(
        cls, source: str, width: int, height: int, model: str, detections: Detections
    ) -> ImageDetections:
        """Build the JSON record of one image's :class:`Detections`."""
        return cls(
            source=source, width=width, height=height, model=model, detections=detection_records(detections)
        )


def detection_records(detections: Detections) -> list[DetectionRecord]:
    """Turn :class:`Detections` into one JSON record per box."""
    track_ids = _column(detections.track_ids)
    global_ids = _column(detections.global_ids)
    velocities = _column(detections.velocities_xy)
    forecasts = _column(detections.forecasts_xyxy)
    return [
        DetectionRecord(
            xyxy=(box[0], box[1], box[2], box[3]),
            score=score,
            class_id=class_id,
            class_name=name,
            track_id=None if track_ids is None else track_ids[i],
            global_id=None if global_ids is None else global_ids[i],
            velocity_xy=None if velocities is None else tuple(velocities[i]),
            forecast_xyxy=None if forecasts is None else tuple(forecasts[i]),
        )
        for i, (box, score, class_id, name) in enumerate(
            zip(
                detections.xyxy.tolist(),
                detections.scores.tolist(),
                detections.class_ids.tolist(),
                detections.class_names,
                strict=True,
            )
        )
    ]


def _column(values: npt.NDArray[Any] | None) -> list[Any] | None:
    return None if values is None else values.tolist()
