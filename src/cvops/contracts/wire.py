"""HTTP contracts of the detection server (REST v1 JSON) and its one response record."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cvops.contracts.detections import DetectionRecord, detection_records
from cvops.detection.types import Detections

MAX_INSTANCES = 32
STREAM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FrameRequest(_Frozen):
    """One frame to detect in, with optional stream identity and per-request thresholds."""

    image_b64: str = Field(min_length=1, description="Base64 of an encoded JPEG or PNG.")
    stream_id: str | None = Field(None, pattern=STREAM_ID_PATTERN)
    frame_index: int | None = Field(None, ge=0)
    timestamp: float | None = Field(None, ge=0.0, description="Capture time, seconds since the epoch.")
    score_threshold: float | None = Field(None, ge=0.0, le=1.0)
    iou_threshold: float | None = Field(None, ge=0.0, le=1.0)


class PredictRequest(_Frozen):
    """REST v1 body: ``{"instances": [FrameRequest, ...]}``."""

    instances: list[FrameRequest] = Field(min_length=1, max_length=MAX_INSTANCES)


class FrameResult(_Frozen):
    """What the server answers for one frame, whatever the protocol."""

    model_name: str
    model_version: str
    stream_id: str | None
    frame_index: int | None
    timestamp: float | None
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    detections: list[DetectionRecord]
    timings_ms: dict[str, float]


def frame_result(
    detections: Detections,
    image_shape: tuple[int, ...],
    model: tuple[str, str],
    stream: tuple[str | None, int | None, float | None],
    timings_ms: dict[str, float],
) -> FrameResult:
    """Build the result of one frame.

    Args:
        detections: What was found (and tracked) in the frame.
        image_shape: The frame's array shape, (H, W, ...).
        model: The model's name and version.
        stream: The stream id, frame index and timestamp the frame came with (each may be None).
        timings_ms: Named durations, rounded here to microseconds.
    """
    (stream_id, frame_index, timestamp), (height, width) = stream, image_shape[:2]
    return FrameResult(
        model_name=model[0],
        model_version=model[1],
        stream_id=stream_id,
        frame_index=frame_index,
        timestamp=timestamp,
        width=width,
        height=height,
        detections=detection_records(detections),
        timings_ms={name: round(ms, 3) for name, ms in timings_ms.items()},
    )


class PredictResponse(_Frozen):
    """REST v1 answer: ``{"predictions": [FrameResult, ...]}``."""

    predictions: list[FrameResult]
