"""A :class:`~cvops.detection.detector.Detector` that runs on a KServe endpoint (``python -m serving``).

Wire format. Frames travel as JPEG by default, over either protocol of the server: the Open
Inference Protocol v2 REST route (``POST {endpoint}/v2/models/{name}/infer``, input ``image``
BYTES ``[N]``, base64 strings in JSON) or gRPC ``ModelInfer`` (the same input in
``raw_input_contents``, each item after its 4-byte little-endian length). The UINT8 tensor the
server also takes costs far more on the wire: a 640x272 frame is ~21 kB as JPEG at quality 90
(~28 kB in base64) against 522 kB of raw pixels, which REST must spell as a JSON list of numbers
(~2.4 MB; a 1080p frame would not fit the server's 16 MB body limit) that KServe parses into
Python objects: ~115 ms a frame on loopback, against ~5 ms for the JPEG (encode, transfer and
decode). JPEG is lossy, though: re-encoding a video frame moves boxes by a few pixels and can
flip boxes near the score threshold. Where the in-process detector's exact boxes matter
(evaluation, parity checks) and bandwidth does not (loopback, a sidecar), ``encoding="uint8"``
over gRPC sends the raw pixels in ``raw_input_contents`` (~3 ms a frame on loopback, 25x the
bytes of JPEG on a real network).

The answer is one FrameResult JSON per frame (``cvops.contracts.wire``), turned back into
:class:`Detections` in original-image pixels. No ``stream_id`` is sent: the server keeps no
tracker for these frames (the pipeline tracks locally), so every request is idempotent and
safe to retry.

Failures. Every attempt has a timeout; connect errors, timeouts, 5xx and 429 (gRPC UNAVAILABLE,
DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNKNOWN) are retried with exponential
backoff, ``Retry-After`` honored up to :data:`MAX_RETRY_AFTER_S`; other 4xx (gRPC
INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND, ...) raise
:class:`InvalidInputError` at once with the server's message. When the retries are spent,
:class:`RemoteDetectorError` names the endpoint and the last error. A :class:`CircuitBreaker`
counts each request (with its retries) as one call: while it is open, calls fail fast with
:class:`BreakerOpenError`; a refusal (4xx) counts as a success, since the server answered.

Class names. The server's v2 model metadata (``GET /v2/models/{name}``) lists none, so they are
learned from the answers (each box carries its class id and name); see
:attr:`RemoteDetector.class_names`.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import cv2
import httpx
import numpy as np
from pydantic import ValidationError

from cvops.config import DetectorSettings
from cvops.contracts.wire import MAX_INSTANCES, FrameResult
from cvops.detection.detector import ImageArray
from cvops.detection.types import Detections
from cvops.errors import InvalidDetectionsError, InvalidInputError, RemoteDetectorError
from cvops.serving.breaker import CircuitBreaker

if TYPE_CHECKING:
    import grpc

logger = logging.getLogger(__name__)

WireProtocol = Literal["http", "grpc"]
Encoding = Literal["jpeg", "uint8"]

INPUT_NAME = "image"
OUTPUT_NAME = "results"
MAX_RETRY_AFTER_S = 5.0  # a server asking for a longer pause is as good as down for a video pipeline
MAX_GRPC_MESSAGE_BYTES = 64 * 1024 * 1024  # the server's limit (serving/__main__.py)
# Payload per request: JPEG in base64 stays under the server's default 16 MB body limit, raw
# pixels under half its gRPC message limit. Larger batches are split; a larger frame goes alone.
JPEG_BATCH_BYTES = 8 * 1024 * 1024
UINT8_BATCH_BYTES = MAX_GRPC_MESSAGE_BYTES // 2
_LENGTH_PREFIX_BYTES = 4


@dataclass(frozen=True, slots=True)
class _Batch:
    """The ``image`` input of one request.

    Attributes:
        datatype: ``BYTES`` (one encoded image per item) or ``UINT8`` (one frame's pixels per
            item, C order, all of one shape).
        shape: The tensor's shape: ``[N]`` or ``[N, H, W, 3]``.
        items: The payload of each image.
        sizes: ``(width, height)`` of each image, in pixels.
    """

    datatype: Literal["BYTES", "UINT8"]
    shape: tuple[int, ...]
    items: tuple[bytes, ...]
    sizes: tuple[tuple[int, int], ...]


class _RetryableError(Exception):
    """One attempt failed in a way another attempt may not (internal to this module)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class _Transport(Protocol):
    def infer(self, batch: _Batch, parameters: dict[str, float]) -> list[bytes]:
        """Send one request; return one FrameResult JSON per image.

        Raises ``_RetryableError``, ``InvalidInputError`` (a client error) or
        ``RemoteDetectorError`` (an answer that cannot be used).
        """
        ...

    def close(self) -> None:
        """Release the connections."""
        ...


@dataclass(frozen=True, slots=True)
class _Credentials:
    api_key: str | None = field(repr=False)
    bearer_token: str | None = field(repr=False)

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.api_key is not None:
            headers["x-api-key"] = self.api_key
        if self.bearer_token is not None:
            headers["authorization"] = f"Bearer {self.bearer_token}"
        return headers


class RemoteDetector:
    """Detects through a KServe endpoint serving a cvops model (``python -m serving``). Thread-safe."""

    def __init__(
        self,
        endpoint: str,
        model_name: str = "detector",
        protocol: WireProtocol = "http",
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.1,
        breaker: CircuitBreaker | None = None,
        api_key: str | None = None,
        bearer_token: str | None = None,
        jpeg_quality: int = 90,
        encoding: Encoding = "jpeg",
    ) -> None:
        """Open a persistent connection pool (HTTP) or channel (gRPC); nothing is sent yet.

        Args:
            endpoint: ``http(s)://host:port`` for HTTP; ``host:port`` for gRPC (plaintext: keep
                it on loopback or inside a mesh that encrypts, since credentials travel in it).
            model_name: The model's name on the server.
            protocol: ``"http"`` (v2 REST) or ``"grpc"`` (v2 gRPC).
            timeout_s: Limit of each attempt (connect, send, wait and read), seconds.
            retries: Attempts after the first one, for retryable failures only.
            backoff_s: Pause before the first retry, doubled before each further one (each
                drawn between 50 and 100 % of that, so many clients do not retry in lockstep).
            breaker: Circuit breaker around the calls; by default one of this detector's own
                that opens after 3 failed calls for 5 s.
            api_key: Sent as ``X-API-Key``.
            bearer_token: Sent as ``Authorization: Bearer ...`` (a JWT the server accepts).
            jpeg_quality: JPEG quality of the frames sent, 1 to 100.
            encoding: ``"jpeg"`` (compact, lossy) or ``"uint8"`` (raw pixels, lossless; gRPC
                only, see the module's docstring).

        Raises:
            InvalidInputError: For an out-of-range argument or an unknown protocol or encoding.
        """
        if protocol not in ("http", "grpc"):
            raise InvalidInputError(f"protocol: expected 'http' or 'grpc', got {protocol!r}")
        if encoding not in ("jpeg", "uint8"):
            raise InvalidInputError(f"encoding: expected 'jpeg' or 'uint8', got {encoding!r}")
        if encoding == "uint8" and protocol == "http":
            raise InvalidInputError(
                "encoding: 'uint8' needs protocol 'grpc' (over REST raw pixels travel as a JSON list, "
                "~4x their size and >100 ms a frame to parse); use 'jpeg' over http"
            )
        if timeout_s <= 0 or retries < 0 or backoff_s < 0:
            got = f"{timeout_s}, {retries}, {backoff_s}"
            raise InvalidInputError(f"expected timeout_s > 0, retries >= 0, backoff_s >= 0, got {got}")
        if not 1 <= jpeg_quality <= 100:
            raise InvalidInputError(f"jpeg_quality: expected a value in [1, 100], got {jpeg_quality}")
        if not endpoint:
            raise InvalidInputError("endpoint: expected a URL (http) or host:port (grpc), got ''")
        self.endpoint = endpoint.rstrip("/")
        self.model_name = model_name
        self.protocol = protocol
        self.encoding = encoding
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.jpeg_quality = jpeg_quality
        self.breaker = breaker or CircuitBreaker(
            f"remote-detector {self.endpoint}", failure_threshold=3, reset_timeout_s=5.0
        )
        credentials = _Credentials(api_key, bearer_token)
        self._transport: _Transport = (
            _HttpTransport(self.endpoint, model_name, timeout_s, credentials)
            if protocol == "http"
            else _GrpcTransport(self.endpoint, model_name, timeout_s, credentials)
        )
        self._lock = threading.Lock()
        self._names_by_id: dict[int, str] = {}
        self._is_closed = False

    @property
    def class_names(self) -> tuple[str, ...]:
        """Return the class names seen so far in answers, indexed by class id.

        The server does not publish its classes (its v2 model metadata lists none), so this
        starts empty and grows as boxes of new classes come back; ids not seen yet read as ``""``.
        Each returned box names its own class, so detections never depend on this.
        """
        with self._lock:
            if not self._names_by_id:
                return ()
            return tuple(self._names_by_id.get(i, "") for i in range(max(self._names_by_id) + 1))

    def detect(
        self, images: Sequence[ImageArray], settings: DetectorSettings | None = None
    ) -> list[Detections]:
        """Detect in BGR images, each (H, W, 3) uint8, any sizes; boxes come back in their pixels.

        A batch goes as one request when it fits (at most 32 frames, 8 MiB of JPEG or 32 MiB of
        pixels of one shape), else as several, in order. ``settings`` sends its
        ``score_threshold`` and ``iou_threshold`` with the request (without it, the server's
        defaults apply); the server takes no per-request ``max_det``, so that field is not sent.

        Raises:
            InvalidInputError: For an image of the wrong shape or type, or when the server
                refuses the request as a client error (bad input, 401, 403, unknown model).
            BreakerOpenError: At once, while the circuit breaker is open.
            RemoteDetectorError: When every attempt failed, or the answer cannot be used.
        """
        if self._is_closed:
            raise InvalidInputError(f"{self.endpoint}: RemoteDetector used after close()")
        for index, image in enumerate(images):
            _check_image(image, index)
        parameters = (
            {}
            if settings is None
            else {"score_threshold": settings.score_threshold, "iou_threshold": settings.iou_threshold}
        )
        found: list[Detections] = []
        for batch in self._batches(images):
            found.extend(self._parse(self._call(batch, parameters), batch.sizes))
        return found

    def close(self) -> None:
        """Close the connections; later calls to :meth:`detect` raise."""
        self._is_closed = True
        self._transport.close()

    def __enter__(self) -> RemoteDetector:
        """Use as a context manager that closes on exit."""
        return self

    def __exit__(self, *_: object) -> None:
        """Close the connections."""
        self.close()

    def _batches(self, images: Sequence[ImageArray]) -> list[_Batch]:
        """Encode the images and split them into requests that fit the server's limits."""
        is_jpeg = self.encoding == "jpeg"
        budget = JPEG_BATCH_BYTES if is_jpeg else UINT8_BATCH_BYTES
        batches: list[_Batch] = []
        start, total = 0, 0
        payloads = [self._jpeg(image, i) if is_jpeg else image.tobytes() for i, image in enumerate(images)]
        for end, payload in enumerate(payloads):
            is_full = end - start == MAX_INSTANCES or total + len(payload) > budget
            if end > start and (is_full or (not is_jpeg and images[end].shape != images[start].shape)):
                batches.append(self._batch(images[start:end], payloads[start:end]))
                start, total = end, 0
            total += len(payload)
        if payloads:
            batches.append(self._batch(images[start:], payloads[start:]))
        return batches

    def _batch(self, images: Sequence[ImageArray], payloads: Sequence[bytes]) -> _Batch:
        sizes = tuple((int(image.shape[1]), int(image.shape[0])) for image in images)
        if self.encoding == "jpeg":
            return _Batch("BYTES", (len(images),), tuple(payloads), sizes)
        return _Batch("UINT8", (len(images), *images[0].shape), tuple(payloads), sizes)

    def _jpeg(self, image: ImageArray, index: int) -> bytes:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise InvalidInputError(f"images[{index}]: JPEG encoding failed for shape {image.shape}")
        return data.tobytes()

    def _call(self, batch: _Batch, parameters: dict[str, float]) -> list[bytes]:
        """One request through the breaker: attempts with backoff until one is answered."""
        self.breaker.before_call()
        is_answered = False
        try:
            raw = self._attempts(batch, parameters)
            is_answered = True
            return raw
        except InvalidInputError:
            is_answered = True  # the server is up and said no: not a failure of the dependency
            raise
        finally:
            # Always record, else a failed half-open trial would leave the breaker stuck.
            if is_answered:
                self.breaker.record_success()
            else:
                self.breaker.record_failure()

    def _attempts(self, batch: _Batch, parameters: dict[str, float]) -> list[bytes]:
        attempts = self.retries + 1
        for attempt in range(attempts):
            try:
                return self._transport.infer(batch, parameters)
            except _RetryableError as error:
                if attempt == attempts - 1:
                    raise RemoteDetectorError(
                        f"{self.protocol} {self.endpoint}: {attempts} attempt(s) failed, last error: {error}"
                    ) from error
                delay_s = self._delay_s(attempt, error.retry_after_s)
                logger.debug(
                    "%s: attempt %d: %s; retry in %.3f s", self.endpoint, attempt + 1, error, delay_s
                )
                time.sleep(delay_s)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _delay_s(self, attempt: int, retry_after_s: float | None) -> float:
        delay_s = self.backoff_s * 2.0**attempt * (0.5 + random.random() / 2)
        if retry_after_s is not None:
            delay_s = max(delay_s, min(retry_after_s, MAX_RETRY_AFTER_S))
        return delay_s

    def _parse(self, raw: Sequence[bytes], sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        if len(raw) != len(sizes):
            raise RemoteDetectorError(f"{self.endpoint}: expected {len(sizes)} results, got {len(raw)}")
        found = []
        for i, (data, (width, height)) in enumerate(zip(raw, sizes, strict=True)):
            try:
                result = FrameResult.model_validate_json(data)
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                raise RemoteDetectorError(
                    f"{self.endpoint}: results[{i}] is not a FrameResult: {where}: {first['msg']}"
                ) from error
            if (result.width, result.height) != (width, height):
                raise RemoteDetectorError(
                    f"{self.endpoint}: results[{i}]: expected a {width}x{height} image, "
                    f"the server saw {result.width}x{result.height}"
                )
            found.append(self._detections(result, i))
        return found

    def _detections(self, result: FrameResult, index: int) -> Detections:
        records = result.detections
        with self._lock:
            for record in records:
                self._names_by_id.setdefault(record.class_id, record.class_name)
        try:
            return Detections(
                xyxy=np.array([d.xyxy for d in records], np.float32).reshape(-1, 4),
                scores=np.array([d.score for d in records], np.float32),
                class_ids=np.array([d.class_id for d in records], np.int64),
                class_names=tuple(d.class_name for d in records),
            )
        except InvalidDetectionsError as error:
            raise RemoteDetectorError(f"{self.endpoint}: results[{index}]: {error}") from error


def _check_image(image: ImageArray, index: int) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
        raise InvalidInputError(f"images[{index}]: expected uint8 (H, W, 3) BGR, got {got}")
    if 0 in image.shape:
        raise InvalidInputError(f"images[{index}]: expected a non-empty image, got shape {image.shape}")


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


class _HttpTransport:
    """v2 REST over one persistent httpx client (a thread-safe connection pool)."""

    def __init__(self, endpoint: str, model_name: str, timeout_s: float, credentials: _Credentials) -> None:
        self._url = f"{endpoint}/v2/models/{model_name}/infer"
        self._client = httpx.Client(timeout=timeout_s, headers=credentials.headers())

    def infer(self, batch: _Batch, parameters: dict[str, float]) -> list[bytes]:
        data = [base64.b64encode(item).decode("ascii") for item in batch.items]
        tensor = {"name": INPUT_NAME, "shape": list(batch.shape), "datatype": batch.datatype, "data": data}
        body: dict[str, Any] = {"inputs": [tensor]}
        if parameters:
            body["parameters"] = parameters
        try:
            response = self._client.post(self._url, json=body)
        except httpx.TransportError as error:  # connect, read, write and pool timeouts included
            raise _RetryableError(_one_line(error)) from error
        status = response.status_code
        if status == 200:
            return _outputs_from_json(response, self._url)
        message = f"HTTP {status}: {_error_message(response)}"
        if status == 429 or status >= 500:
            raise _RetryableError(message, _retry_after_s(response.headers.get("retry-after")))
        if 400 <= status < 500:
            raise InvalidInputError(f"{self._url}: {message}")
        raise RemoteDetectorError(f"{self._url}: unexpected {message}")

    def close(self) -> None:
        self._client.close()


def _outputs_from_json(response: httpx.Response, url: str) -> list[bytes]:
    try:
        (output,) = [o for o in response.json()["outputs"] if o["name"] == OUTPUT_NAME]
        return [str(item).encode() for item in output["data"]]
    except (ValueError, KeyError, TypeError) as error:
        raise RemoteDetectorError(
            f"{url}: expected a v2 answer with one {OUTPUT_NAME!r} output, got {response.text[:200]!r}"
        ) from error


def _error_message(response: httpx.Response) -> str:
    """The server's ``{"error": ...}`` message, else the start of the body, on one line."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        text = str(payload["error"])
    else:
        text = response.text[:200] or response.reason_phrase
    return " ".join(text.split())


def _retry_after_s(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _GrpcTransport:
    """v2 gRPC ``ModelInfer`` over one persistent channel (thread-safe)."""

    def __init__(self, endpoint: str, model_name: str, timeout_s: float, credentials: _Credentials) -> None:
        # Imported here: the kserve package pulls in FastAPI, which cvops' core never loads.
        import grpc
        from kserve.protocol.grpc import grpc_predict_v2_pb2, grpc_predict_v2_pb2_grpc

        self._grpc = grpc
        self._pb = grpc_predict_v2_pb2
        self._target = endpoint
        self._model_name = model_name
        self._timeout_s = timeout_s
        self._metadata = tuple(credentials.headers().items())
        # Calls fail fast (UNAVAILABLE) while the channel waits to reconnect, and gRPC's default
        # wait grows to 120 s: a restarted server would stay unused long after it is back. Our
        # retries and breaker pace the calls, so the channel retries its connection every <= 250 ms.
        self._channel = grpc.insecure_channel(
            endpoint,
            options=[
                ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 250),
            ],
        )
        self._stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(self._channel)

    def infer(self, batch: _Batch, parameters: dict[str, float]) -> list[bytes]:
        pb = self._pb
        if batch.datatype == "BYTES":
            raw = b"".join(len(item).to_bytes(_LENGTH_PREFIX_BYTES, "little") + item for item in batch.items)
        else:
            raw = b"".join(batch.items)
        request = pb.ModelInferRequest(
            model_name=self._model_name,
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name=INPUT_NAME, datatype=batch.datatype, shape=list(batch.shape)
                )
            ],
            raw_input_contents=[raw],
            # KServe's InferParameter has no double field; the server parses the string as a float.
            parameters={
                key: pb.InferParameter(string_param=repr(value)) for key, value in parameters.items()
            },
        )
        try:
            reply = self._stub.ModelInfer(request, timeout=self._timeout_s, metadata=self._metadata)
        except self._grpc.RpcError as error:
            raise self._classify(error) from error
        return self._outputs(reply)

    def _classify(self, error: grpc.RpcError) -> Exception:
        code = error.code()
        message = " ".join(f"gRPC {code.name}: {error.details()}".split())
        status = self._grpc.StatusCode
        retryable = {
            status.UNAVAILABLE,
            status.DEADLINE_EXCEEDED,
            status.RESOURCE_EXHAUSTED,
            status.ABORTED,
            status.INTERNAL,
            status.UNKNOWN,
        }
        if code in retryable:
            return _RetryableError(message)
        return InvalidInputError(f"{self._target}: {message}")

    def _outputs(self, reply: Any) -> list[bytes]:
        names = [output.name for output in reply.outputs]
        if OUTPUT_NAME not in names:
            raise RemoteDetectorError(f"{self._target}: expected an output {OUTPUT_NAME!r}, got {names}")
        index = names.index(OUTPUT_NAME)
        if len(reply.raw_output_contents) > index:
            try:
                return _split_length_prefixed(reply.raw_output_contents[index])
            except ValueError as error:
                raise RemoteDetectorError(f"{self._target}: {OUTPUT_NAME}: {error}") from error
        return list(reply.outputs[index].contents.bytes_contents)

    def close(self) -> None:
        self._channel.close()


def _split_length_prefixed(raw: bytes) -> list[bytes]:
    """Split v2 raw BYTES contents: each item is a 4-byte little-endian length, then the item.

    Raises:
        ValueError: When a length or an item runs past the end.
    """
    items = []
    offset = 0
    while offset < len(raw):
        if offset + _LENGTH_PREFIX_BYTES > len(raw):
            raise ValueError(f"truncated length prefix at byte {offset} of {len(raw)}")
        length = int.from_bytes(raw[offset : offset + _LENGTH_PREFIX_BYTES], "little")
        offset += _LENGTH_PREFIX_BYTES
        if offset + length > len(raw):
            raise ValueError(f"item of {length} bytes at byte {offset} runs past the end ({len(raw)})")
        items.append(raw[offset : offset + length])
        offset += length
    return items
