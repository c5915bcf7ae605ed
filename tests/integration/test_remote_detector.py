"""RemoteDetector against the real server (``python -m serving``) over HTTP and gRPC on loopback."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from cvops.config import DetectorSettings
from cvops.detection.coco import COCO80_NAMES
from cvops.detection.detector import Detector, ImageArray
from cvops.detection.loader import load_detector
from cvops.detection.ops import box_iou
from cvops.detection.types import Detections
from cvops.errors import InvalidInputError, RemoteDetectorError
from cvops.processes import free_port
from cvops.serving.auth import hash_api_key
from cvops.serving.breaker import BreakerOpenError, BreakerState, CircuitBreaker
from cvops.video.remote import RemoteDetector, WireProtocol
from tests.conftest import fixture_path
from tests.integration import test_serving
from tests.integration.test_serving import Server, start_server

pytestmark = pytest.mark.integration

API_KEY = "remote-detector-key-0123456789"
JWT_SECRET = "j" * 40
SETTINGS = DetectorSettings(score_threshold=0.3)
BIKES_FIRST_FRAME = 135
PROTOCOLS: list[WireProtocol] = ["http", "grpc"]


@pytest.fixture(scope="module")
def keyed_server(yolox_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    keys = tmp_path_factory.mktemp("remote-keys") / "api-keys.json"
    entry = {"id": "remote", "sha256": hash_api_key(API_KEY), "models": ["*"]}
    keys.write_text(json.dumps({"keys": [entry]}))
    process, served = start_server(
        yolox_package, "--api-keys-file", str(keys), "--jwt-algorithm", "HS256",
        env={"CVOPS_JWT_SECRET": JWT_SECRET},
    )  # fmt: skip
    yield served
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def local_detector(yolox_package: Path) -> Detector:
    return load_detector(yolox_package, SETTINGS)


@pytest.fixture(scope="module")
def bus() -> list[ImageArray]:
    image = cv2.imread(str(fixture_path("images/bus.jpg")))
    assert image is not None
    return [image]


@pytest.fixture(scope="module")
def bikes() -> list[ImageArray]:
    """Two consecutive frames (640x272) with a cyclist, a bus and motorbikes, decoded with OpenCV."""
    capture = cv2.VideoCapture(str(fixture_path("video/bikes.mp4")))
    frames = [capture.read()[1] for _ in range(BIKES_FIRST_FRAME + 2)][-2:]
    capture.release()
    assert all(frame is not None and frame.shape == (272, 640, 3) for frame in frames)
    return frames


@pytest.fixture(scope="module")
def mixed_sizes(bus: list[ImageArray], bikes: list[ImageArray]) -> list[ImageArray]:
    """Frames of two sizes in one batch: raw pixels go as one request per size, in order."""
    return [bikes[0], *bus, bikes[1]]


def _endpoint(server: Server, protocol: WireProtocol) -> str:
    return server.url if protocol == "http" else server.grpc_target


def _max_box_error_px(remote: Detections, local: Detections) -> float:
    """Largest coordinate difference of boxes matched by IoU; both must hold the same boxes."""
    assert len(remote) == len(local), f"{len(remote)} remote boxes vs {len(local)} in-process"
    if len(local) == 0:
        return 0.0
    match = box_iou(local.xyxy, remote.xyxy).argmax(axis=1)
    assert sorted(match.tolist()) == list(range(len(remote))), "boxes match one to one"
    assert [remote.class_names[j] for j in match] == list(local.class_names)
    assert np.allclose(remote.scores[match], local.scores, atol=1e-3)
    return float(np.abs(remote.xyxy[match] - local.xyxy).max())


def _jpeg_round_trip(image: ImageArray) -> ImageArray:
    """The pixels the server decodes from what RemoteDetector sends (JPEG at its default 90)."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return np.asarray(cv2.imdecode(data, cv2.IMREAD_COLOR), np.uint8)


IMAGE_SETS = pytest.mark.parametrize(
    "images_fixture", ["bus", "bikes", "mixed_sizes"], ids=["bus-jpg", "bikes-batch-of-2", "mixed-sizes"]
)


@IMAGE_SETS
def test_raw_pixels_over_grpc_give_the_in_process_boxes(
    keyed_server: Server, local_detector: Detector, images_fixture: str, request: pytest.FixtureRequest
) -> None:
    images: list[ImageArray] = request.getfixturevalue(images_fixture)
    remote = RemoteDetector(keyed_server.grpc_target, protocol="grpc", api_key=API_KEY, encoding="uint8")
    with remote:
        found = remote.detect(images, SETTINGS)
    assert len(found) == len(images)
    for remote_dets, local_dets in zip(found, local_detector.detect(images, SETTINGS), strict=True):
        assert len(local_dets) >= 4
        # Within 1 px is what parity needs; the same pixels through the same graph agree closer.
        assert _max_box_error_px(remote_dets, local_dets) < 0.01
        assert remote_dets.track_ids is None, "no stream is sent, so nothing is tracked remotely"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@IMAGE_SETS
def test_jpeg_frames_give_the_in_process_boxes_of_the_pixels_sent(
    keyed_server: Server,
    local_detector: Detector,
    protocol: WireProtocol,
    images_fixture: str,
    request: pytest.FixtureRequest,
) -> None:
    """JPEG moves boxes by its loss only: the in-process detector on the decoded JPEG agrees."""
    images: list[ImageArray] = request.getfixturevalue(images_fixture)
    with RemoteDetector(_endpoint(keyed_server, protocol), protocol=protocol, api_key=API_KEY) as remote:
        found = remote.detect(images, SETTINGS)
        learned = {i: name for i, name in enumerate(remote.class_names) if name}
    on_jpeg = local_detector.detect([_jpeg_round_trip(image) for image in images], SETTINGS)
    assert len(found) == len(images)
    for remote_dets, local_dets in zip(found, on_jpeg, strict=True):
        assert len(local_dets) >= 4
        assert _max_box_error_px(remote_dets, local_dets) < 0.01
    assert learned, "class names are learned from the answers"
    assert all(COCO80_NAMES[i] == name for i, name in learned.items())


def test_http_and_grpc_give_the_same_boxes(keyed_server: Server, bikes: list[ImageArray]) -> None:
    answers = []
    for protocol in PROTOCOLS:
        with RemoteDetector(_endpoint(keyed_server, protocol), protocol=protocol, api_key=API_KEY) as remote:
            answers.append(remote.detect(bikes, SETTINGS))
    for over_http, over_grpc in zip(*answers, strict=True):
        assert _max_box_error_px(over_http, over_grpc) < 1e-3


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_threads_share_one_detector(
    keyed_server: Server, bikes: list[ImageArray], protocol: WireProtocol
) -> None:
    with RemoteDetector(_endpoint(keyed_server, protocol), protocol=protocol, api_key=API_KEY) as remote:
        expected = remote.detect(bikes[:1], SETTINGS)[0]
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: remote.detect(bikes[:1], SETTINGS)[0], range(8)))
    assert all(_max_box_error_px(answer, expected) < 1e-3 for answer in answers)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_per_call_thresholds_reach_the_server(
    keyed_server: Server, bus: list[ImageArray], protocol: WireProtocol
) -> None:
    with RemoteDetector(_endpoint(keyed_server, protocol), protocol=protocol, api_key=API_KEY) as remote:
        strict = remote.detect(bus, DetectorSettings(score_threshold=0.8))[0]
        loose = remote.detect(bus, DetectorSettings(score_threshold=0.05))[0]
    assert len(strict) > 0
    assert (strict.scores > 0.8).all()
    assert len(loose) > len(strict)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_bearer_token_is_accepted(
    keyed_server: Server, bus: list[ImageArray], protocol: WireProtocol
) -> None:
    import jwt

    token = jwt.encode({"sub": "pipeline", "exp": int(time.time()) + 60}, JWT_SECRET, algorithm="HS256")
    with RemoteDetector(_endpoint(keyed_server, protocol), protocol=protocol, bearer_token=token) as remote:
        assert len(remote.detect(bus, SETTINGS)[0]) > 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("api_key", ["wrong-key-0123456789", None], ids=["wrong-key", "no-key"])
def test_refused_credentials_fail_at_once_without_retries(
    keyed_server: Server, bus: list[ImageArray], protocol: WireProtocol, api_key: str | None
) -> None:
    breaker = CircuitBreaker("remote", failure_threshold=1, reset_timeout_s=30)
    remote = RemoteDetector(
        _endpoint(keyed_server, protocol), protocol=protocol, api_key=api_key, retries=3, backoff_s=1.0,
        breaker=breaker,
    )  # fmt: skip
    start = time.monotonic()
    with remote, pytest.raises(InvalidInputError, match=r"401|UNAUTHENTICATED") as caught:
        remote.detect(bus)
    assert time.monotonic() - start < 0.5, "a retry would have slept at least 0.5 s"
    assert "API key" in str(caught.value) or "credentials" in str(caught.value), str(caught.value)
    assert breaker.state is BreakerState.CLOSED, "a refusal means the server is up"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_down_server_fails_after_retries_then_the_breaker_fails_fast(
    bikes: list[ImageArray], protocol: WireProtocol
) -> None:
    port = free_port()  # nothing listens here
    endpoint = f"http://127.0.0.1:{port}" if protocol == "http" else f"127.0.0.1:{port}"
    breaker = CircuitBreaker("down", failure_threshold=1, reset_timeout_s=30)
    remote = RemoteDetector(
        endpoint, protocol=protocol, timeout_s=1.0, retries=2, backoff_s=0.05, breaker=breaker
    )
    with remote:
        start = time.monotonic()
        with pytest.raises(RemoteDetectorError, match="3 attempt") as caught:
            remote.detect(bikes)
        elapsed_s = time.monotonic() - start
        assert endpoint in str(caught.value)
        assert "\n" not in str(caught.value)
        # Two backoffs (jittered 50-100 % of 0.05 s and 0.1 s) and three refused connects.
        assert 0.07 <= elapsed_s < 2.0
        assert breaker.state is BreakerState.OPEN
        start = time.monotonic()
        with pytest.raises(BreakerOpenError):
            remote.detect(bikes)
        assert time.monotonic() - start < 0.05


def _start_on_ports(package: Path, http_port: int, grpc_port: int) -> tuple[subprocess.Popen[bytes], Server]:
    """``start_server`` on given ports (it takes its two ports from ``free_port``)."""
    ports = iter([http_port, grpc_port])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(test_serving, "free_port", lambda: next(ports))
        return start_server(package, "--allow-anonymous")


def _wait_for_grpc(target: str) -> None:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=30, wait_for_ready=True).ready


def test_a_restarted_server_is_used_again_half_open_then_closed(
    yolox_package: Path, bikes: list[ImageArray]
) -> None:
    http_port, grpc_port = free_port(), free_port()
    process, served = _start_on_ports(yolox_package, http_port, grpc_port)
    states: dict[WireProtocol, list[BreakerState]] = {"http": [], "grpc": []}
    remotes = {
        protocol: RemoteDetector(
            _endpoint(served, protocol), protocol=protocol, timeout_s=2.0, retries=1, backoff_s=0.05,
            breaker=CircuitBreaker(protocol, 1, 0.5, on_state=lambda _, s, p=protocol: states[p].append(s)),
        )
        for protocol in PROTOCOLS
    }  # fmt: skip
    try:
        for remote in remotes.values():
            assert len(remote.detect(bikes)) == 2
        process.terminate()
        process.wait(timeout=30)
        for remote in remotes.values():
            with pytest.raises(RemoteDetectorError):
                remote.detect(bikes)
            with pytest.raises(BreakerOpenError):
                remote.detect(bikes)
        process, _ = _start_on_ports(yolox_package, http_port, grpc_port)
        _wait_for_grpc(served.grpc_target)  # ready over HTTP does not mean listening for gRPC yet
        time.sleep(0.5)  # the breakers' reset timeout; the gRPC channel reconnects within 0.25 s
        for remote in remotes.values():
            assert len(remote.detect(bikes)) == 2
    finally:
        for remote in remotes.values():
            remote.close()
        process.terminate()
        process.wait(timeout=30)
    expected = [BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]
    assert states == {"http": expected, "grpc": expected}


def test_rate_limited_calls_wait_for_retry_after_and_succeed(
    yolox_package: Path, bikes: list[ImageArray]
) -> None:
    process, served = start_server(yolox_package, "--allow-anonymous", "--rate-per-s", "1", "--burst", "1")
    try:
        with RemoteDetector(served.url, retries=2, backoff_s=0.01) as remote:
            remote.detect(bikes[:1])
            start = time.monotonic()
            assert len(remote.detect(bikes[:1])) == 1  # 429 with Retry-After: 1, then served
            assert time.monotonic() - start >= 0.9, "the retry waited as the server asked"
        metrics = httpx.get(f"{served.url}/metrics").text
        assert 'cvops_rejected_requests_total{reason="rate"} 1.0' in metrics
    finally:
        process.terminate()
        process.wait(timeout=30)
