"""The KServe predictor: validate the request, call cvops, serialize the FrameResults.

REST v1 (``/v1/models/NAME:predict``) takes ``{"instances": [FrameRequest, ...]}`` and answers
``{"predictions": [FrameResult, ...]}``. The Open Inference Protocol v2 (REST and gRPC) takes
one input ``image``: BYTES ``[N]`` (encoded JPEG/PNG; base64 strings over JSON) or UINT8
``[N, H, W, 3]`` / ``[H, W, 3]`` (BGR pixels), with optional request parameters ``stream_id``,
``frame_index``, ``timestamp``, ``score_threshold`` and ``iou_threshold``; it answers one BYTES
output ``results`` holding one FrameResult JSON per image.
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import kserve
import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from pydantic import ValidationError

from cvops.config import DetectorSettings
from cvops.contracts.model_package import read_model_package
from cvops.contracts.wire import MAX_INSTANCES, FrameResult, PredictRequest, PredictResponse
from cvops.detection.detector import Detector
from cvops.errors import CvopsError
from cvops.images import decode_image
from cvops.serving.batching import BatchingConfig, DynamicBatcher
from cvops.serving.metrics import ServingMetrics
from cvops.serving.service import DEFAULT_MAX_PIXELS, DetectionService, Frame
from cvops.serving.streams import StreamTrackers
from cvops.tracking.base import FrameTracker
from cvops.tracking.gallery import CrossCameraGallery

logger = logging.getLogger(__name__)

V2_INPUT = "image"
V2_OUTPUT = "results"


class DetectModel(kserve.Model):  # type: ignore[misc]
    """Serves one detector package; keeps a tracker per ``stream_id``."""

    def __init__(
        self,
        name: str,
        package_dir: Path,
        load_detector: Callable[[Path, DetectorSettings], Detector],
        new_tracker: Callable[[], FrameTracker],
        settings: DetectorSettings | None = None,
        stream_ttl_s: float = 300.0,
        max_streams: int = 1024,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        metrics: ServingMetrics | None = None,
        batching: BatchingConfig | None = None,
        gallery: CrossCameraGallery | None = None,
        resolve_package: Callable[[], Path] | None = None,
    ) -> None:
        """Describe the model; nothing is read until :meth:`load`.

        Args:
            name: Model name in the URL.
            package_dir: Model package folder (mounted ``model_dir``).
            load_detector: Opens a package (injected so tests can pass a fake).
            new_tracker: Makes the tracker of a new stream.
            settings: Default thresholds and threads.
            stream_ttl_s: Idle seconds before a stream's tracker is dropped.
            max_streams: Most streams tracked at once.
            max_pixels: Largest image accepted, in pixels.
            metrics: Prometheus metrics to record into.
            batching: How concurrent requests are merged into detector batches.
            gallery: Cross-camera global ids for the tracks of all streams (trackers must embed).
            resolve_package: Returns the package folder to open, called on every load and reload
                (e.g. a registry alias ``models:/detector@champion`` fetched behind a circuit
                breaker); ``package_dir`` as it is when None.
        """
        super().__init__(name)
        self.package_dir = package_dir
        self._resolve_package = resolve_package or (lambda: self.package_dir)
        self._load_detector = load_detector
        self._new_tracker = new_tracker
        self.settings = settings or DetectorSettings()
        self._stream_ttl_s = stream_ttl_s
        self._max_streams = max_streams
        self.max_pixels = max_pixels
        self.metrics = metrics
        self.batching = batching or BatchingConfig()
        self.gallery = gallery
        self.service: DetectionService | None = None
        self.batcher: DynamicBatcher[Frame, FrameResult] | None = None

    def load(self) -> bool:
        """Read the package and open the detector once; a failure raises with the reason."""
        self.service = self._open_service(
            StreamTrackers(self._new_tracker, self._stream_ttl_s, self._max_streams)
        )
        self.batcher = DynamicBatcher(self._infer_now, self.batching)
        self.ready = True
        return True

    def reload(self) -> bool:
        """Open the package now at ``package_dir``; if it cannot load, keep serving the current one.

        Streams keep their trackers across a reload. Returns whether the new package is served.
        """
        assert self.service is not None, "reload() after load()"
        try:
            service = self._open_service(self.service.streams)
        except CvopsError as error:
            logger.error("reload refused, still serving %s: %s", self.service.model_version, error)
            if self.metrics is not None:
                self.metrics.model_reloads.labels(result="refused").inc()
            return False
        self.service = service
        logger.info("now serving %s", service.model_version)
        if self.metrics is not None:
            self.metrics.model_reloads.labels(result="loaded").inc()
        return True

    def _open_service(self, streams: StreamTrackers[FrameTracker]) -> DetectionService:
        package = self._resolve_package()
        spec = read_model_package(package)
        detector = self._load_detector(package, self.settings)
        version = f"{spec.name}-{spec.precision}"
        return DetectionService(
            detector, self.name, version, self.settings, streams, self.metrics, self.gallery
        )

    def _infer_now(self, frames: Sequence[Frame]) -> list[FrameResult]:
        assert self.service is not None
        return self.service.infer(frames)

    async def predict(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> Any:
        """Dispatch to the v1 (JSON dict) or v2 (InferRequest) handler."""
        if isinstance(payload, InferRequest):
            return await self.predict_v2(payload)
        return await self.predict_v1(payload)

    async def predict_v1(self, payload: dict[str, Any]) -> dict[str, Any]:
        """REST v1: validate instances, detect, answer predictions."""
        try:
            request = PredictRequest.model_validate(payload)
        except ValidationError as error:
            raise InvalidInput(_first_error(error)) from error
        frames = [
            Frame(
                image=self._decode(
                    _b64decode(instance.image_b64, f"instances[{i}].image_b64"), f"instances[{i}]"
                ),
                stream_id=instance.stream_id,
                frame_index=instance.frame_index,
                timestamp=instance.timestamp,
                score_threshold=instance.score_threshold,
                iou_threshold=instance.iou_threshold,
            )
            for i, instance in enumerate(request.instances)
        ]
        return PredictResponse(predictions=await self._infer(frames)).model_dump()

    async def predict_v2(self, request: InferRequest) -> InferResponse:
        """Open Inference Protocol v2: one ``image`` input, one ``results`` output."""
        inputs = [i for i in request.inputs if i.name == V2_INPUT]
        if len(inputs) != 1:
            raise InvalidInput(
                f"inputs: expected one input named {V2_INPUT!r}, got {[i.name for i in request.inputs]}"
            )
        tensor = inputs[0]
        parameters = _parameters(request.parameters)
        images = self._v2_images(tensor.datatype, tensor.as_numpy())
        frames = [Frame(image=image, **parameters) for image in images]
        results = await self._infer(frames)
        payload = np.array([r.model_dump_json().encode() for r in results], dtype=np.object_)
        output = InferOutput(name=V2_OUTPUT, shape=[len(results)], datatype="BYTES")
        output.set_data_from_numpy(payload, binary_data=request.from_grpc)
        return InferResponse(
            response_id=request.id or str(uuid.uuid4()),
            model_name=self.name,
            infer_outputs=[output],
            from_grpc=request.from_grpc,
        )

    def _v2_images(self, datatype: str, array: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
        if datatype == "BYTES":
            if array.ndim != 1 or not 1 <= len(array) <= MAX_INSTANCES:
                raise InvalidInput(
                    f"{V2_INPUT}: expected BYTES of shape [N], 1 <= N <= {MAX_INSTANCES}, "
                    f"got {list(array.shape)}"
                )
            return [
                self._decode(
                    item if isinstance(item, bytes) else _b64decode(str(item), f"{V2_INPUT}[{i}]"),
                    f"{V2_INPUT}[{i}]",
                )
                for i, item in enumerate(array.tolist())
            ]
        if datatype == "UINT8":
            batch = array[None] if array.ndim == 3 else array
            if batch.ndim != 4 or batch.shape[-1] != 3 or 0 in batch.shape or len(batch) > MAX_INSTANCES:
                raise InvalidInput(
                    f"{V2_INPUT}: expected UINT8 [N, H, W, 3] or [H, W, 3], N <= {MAX_INSTANCES}, "
                    f"got {list(array.shape)}"
                )
            if batch.shape[1] * batch.shape[2] > self.max_pixels:
                raise InvalidInput(
                    f"{V2_INPUT}: {batch.shape[2]}x{batch.shape[1]} exceeds {self.max_pixels} pixels"
                )
            return [np.ascontiguousarray(image, dtype=np.uint8) for image in batch]
        raise InvalidInput(f"{V2_INPUT}: expected datatype BYTES or UINT8, got {datatype}")

    def _decode(self, data: bytes, source: str) -> np.ndarray[Any, Any]:
        try:
            return decode_image(data, source, self.max_pixels)
        except CvopsError as error:
            raise InvalidInput(str(error)) from error

    async def _infer(self, frames: list[Frame]) -> list[FrameResult]:
        if self.batcher is None:
            raise InvalidInput(f"model {self.name} is not loaded")
        try:
            return await self.batcher.submit(frames)
        except (CvopsError, ValueError) as error:
            raise InvalidInput(str(error)) from error


def _b64decode(text: str, source: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidInput(f"{source}: not valid base64") from error


_V2_PARAMETERS = {
    "stream_id": str,
    "frame_index": int,
    "timestamp": float,
    "score_threshold": float,
    "iou_threshold": float,
}


def _parameters(raw: Any) -> dict[str, Any]:
    """Pick the frame parameters out of a v2 request's parameters (JSON or gRPC map)."""
    if not raw:
        return {}
    values: dict[str, Any] = {}
    for key, kind in _V2_PARAMETERS.items():
        if key not in raw:
            continue
        value = raw[key]
        if hasattr(value, "ListFields"):  # a gRPC InferParameter: whichever of its fields is set
            chosen = value.ListFields()
            value = chosen[0][1] if chosen else None
        try:
            values[key] = kind(value)
        except (TypeError, ValueError) as error:
            raise InvalidInput(f"parameters.{key}: expected {kind.__name__}, got {value!r}") from error
    try:
        from cvops.contracts.wire import FrameRequest

        FrameRequest.model_validate({"image_b64": "x", **values})
    except ValidationError as error:
        raise InvalidInput("parameters." + _first_error(error)) from error
    return values


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"
