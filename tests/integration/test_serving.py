"""The KServe predictor as clients see it: a real server process on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from cvops.contracts.wire import FrameResult
from cvops.detection.ops import box_iou
from cvops.processes import free_port, wait_until_ready
from cvops.tracking.bytetrack import ByteTrackSettings
from tests.conftest import REPO_ROOT, fixture_path

pytestmark = pytest.mark.integration


def start_server(
    package: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Server]:
    """Start ``python -m serving`` on free loopback ports and wait until it is ready."""
    http_port, grpc_port = free_port(), free_port()
    command = [
        sys.executable, "-m", "serving", "--model-dir", str(package),
        "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--score-threshold", "0.3", *extra,
    ]  # fmt: skip
    # Logs go to a file: a pipe nobody reads fills up and blocks the server.
    log = Path(tempfile.mkstemp(prefix="serving-", suffix=".log")[1])
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    served = Server(http_port, grpc_port)
    wait_until_ready(process, f"{served.url}/v2/health/ready", log)
    return process, served


class Server:
    def __init__(self, http_port: int, grpc_port: int) -> None:
        self.url = f"http://127.0.0.1:{http_port}"
        self.grpc_target = f"127.0.0.1:{grpc_port}"

    def v1(self, *instances: dict[str, object]) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/models/detector:predict", json={"instances": list(instances)}, timeout=60
        )


@pytest.fixture(scope="module")
def server(yolox_package: Path) -> Iterator[Server]:
    process, served = start_server(yolox_package, "--allow-anonymous")
    yield served
    process.terminate()
    process.wait(timeout=30)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return bytes(data)


def test_binds_loopback_and_answers_health(server: Server) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{server.url}/v2/health/live").status_code == 200
    assert httpx.get(f"{server.url}/v1/models/detector").json()["ready"] is True


def test_v1_predict_finds_the_bus_in_original_pixels(server: Server) -> None:
    response = server.v1({"image_b64": _b64(fixture_path("images/bus.jpg"))})
    assert response.status_code == 200, response.text
    (result,) = [FrameResult.model_validate(p) for p in response.json()["predictions"]]
    assert (result.width, result.height, result.model_version) == (810, 1080, "yolox_nano-fp32")
    bus = [d for d in result.detections if d.class_name == "bus"]
    assert len(bus) == 1
    assert bus[0].xyxy[2] > 700  # the bus spans the image width, in original pixels
    assert {"detect", "track"} <= set(result.timings_ms)


def test_per_request_threshold_overrides_the_default(server: Server) -> None:
    image = _b64(fixture_path("images/bus.jpg"))
    strict = server.v1({"image_b64": image, "score_threshold": 0.8}).json()["predictions"][0]
    loose = server.v1({"image_b64": image, "score_threshold": 0.05}).json()["predictions"][0]
    assert all(d["score"] > 0.8 for d in strict["detections"])
    assert len(loose["detections"]) > len(strict["detections"])


def test_streams_keep_track_ids_and_do_not_share_them(server: Server) -> None:
    frames = sorted(fixture_path("mot17-mini/train").glob("*/img1"))[0]
    images = sorted(frames.glob("*.jpg"))[:3]
    ids_a = [
        {d["track_id"] for d in server.v1({"image_b64": _b64(p), "stream_id": "cam-a", "frame_index": i})
         .json()["predictions"][0]["detections"]}
        for i, p in enumerate(images)
    ]  # fmt: skip
    first_b = server.v1({"image_b64": _b64(images[0]), "stream_id": "cam-b"}).json()["predictions"][0]
    assert len(ids_a[0]) >= 3
    assert len(ids_a[0] & ids_a[1] & ids_a[2]) >= 0.7 * len(ids_a[0]), "most people keep their id"
    confident = [d for d in first_b["detections"] if d["score"] >= ByteTrackSettings().new_track_score]
    assert {d["track_id"] for d in confident} == set(range(1, len(confident) + 1)), (
        "a new stream counts from 1"
    )
    assert all(d["velocity_xy"] is not None and d["forecast_xyxy"] is not None for d in first_b["detections"])
    no_stream = server.v1({"image_b64": _b64(images[0])}).json()["predictions"][0]
    assert {d["track_id"] for d in no_stream["detections"]} == {None}


def test_v2_rest_accepts_encoded_bytes_and_uint8_tensors(server: Server) -> None:
    image = cv2.imread(str(fixture_path("images/zidane.jpg")))
    small = cv2.resize(image, (320, 180))
    url = f"{server.url}/v2/models/detector/infer"
    encoded = {
        "inputs": [
            {
                "name": "image",
                "shape": [1],
                "datatype": "BYTES",
                "data": [base64.b64encode(_jpeg(small)).decode()],
            }
        ]
    }
    tensor = {
        "inputs": [
            {
                "name": "image",
                "shape": list(small.shape),
                "datatype": "UINT8",
                "data": small.flatten().tolist(),
            }
        ]
    }
    results = []
    for body in (encoded, tensor):
        response = httpx.post(url, json=body, timeout=60)
        assert response.status_code == 200, response.text
        (output,) = response.json()["outputs"]
        results.append(FrameResult.model_validate_json(output["data"][0]))
    assert all("person" in {d.class_name for d in r.detections} for r in results)
    assert results[1].width == 320


def grpc_infer_request(image: Path, stream_id: str | None = None) -> Any:
    """A v2 ModelInfer request with one encoded image (BYTES, 4-byte little-endian length prefix)."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    data = image.read_bytes()
    parameters = {} if stream_id is None else {"stream_id": pb.InferParameter(string_param=stream_id)}
    return pb.ModelInferRequest(
        model_name="detector",
        inputs=[pb.ModelInferRequest.InferInputTensor(name="image", datatype="BYTES", shape=[1])],
        raw_input_contents=[len(data).to_bytes(4, "little") + data],
        parameters=parameters,
    )


def test_grpc_v2_infer_with_stream_parameter(server: Server) -> None:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    request = grpc_infer_request(fixture_path("images/bus.jpg"), stream_id="grpc-cam")
    with grpc.insecure_channel(server.grpc_target) as channel:
        reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
    raw = reply.raw_output_contents[0]
    result = FrameResult.model_validate_json(raw[4 : 4 + int.from_bytes(raw[:4], "little")])
    assert result.stream_id == "grpc-cam"
    assert "bus" in {d.class_name for d in result.detections}
    assert all(d.track_id is not None for d in result.detections)


def _big_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (12_000, 4_000)).save(buffer, format="PNG")  # 48 MP, a few kB on the wire
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("instance", "message"),
    [
        ({"image_b64": "not base64!"}, "not valid base64"),
        ({"image_b64": base64.b64encode(b"plain text").decode()}, "not a decodable image"),
        ({"image_b64": base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 300).decode()}, "truncated JPEG"),
        ({"image_b64": base64.b64encode(_big_png()).decode()}, "exceeds the limit"),
        ({"image_b64": "aGVsbG8=", "score_threshold": 2}, "score_threshold"),
        ({"image_b64": "aGVsbG8=", "stream_id": "../../etc"}, "stream_id"),
        ({"image_b64": "aGVsbG8=", "surprise": 1}, "surprise"),
        ({}, "image_b64"),
    ],
    ids=["bad-base64", "not-an-image", "truncated-jpeg", "pixel-bomb", "threshold-range", "bad-stream-id",
         "extra-field", "no-image"],
)  # fmt: skip
def test_bad_v1_input_is_a_400_with_the_reason(
    server: Server, instance: dict[str, object], message: str
) -> None:
    response = server.v1(instance)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": [{"name": "other", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}, "named 'image'"),
        (
            {"inputs": [{"name": "image", "shape": [2, 2], "datatype": "UINT8", "data": [1, 2, 3, 4]}]},
            "UINT8 [N, H, W, 3]",
        ),
        ({"inputs": [{"name": "image", "shape": [1], "datatype": "FP32", "data": [1.0]}]}, "BYTES or UINT8"),
        (
            {
                "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["x"]}],
                "parameters": {"frame_index": -1},
            },
            "frame_index",
        ),
    ],
    ids=["wrong-name", "wrong-shape", "wrong-dtype", "bad-parameter"],
)
def test_bad_v2_input_is_a_400_with_the_reason(server: Server, body: dict[str, object], message: str) -> None:
    response = httpx.post(f"{server.url}/v2/models/detector/infer", json=body, timeout=30)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_malformed_json_is_a_4xx_and_server_keeps_serving(server: Server) -> None:
    response = httpx.post(
        f"{server.url}/v1/models/detector:predict",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert 400 <= response.status_code < 500
    assert server.v1({"image_b64": _b64(fixture_path("images/bus.jpg"))}).status_code == 200


def test_server_refuses_a_package_that_cannot_load(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text(json.dumps({"name": "broken"}))
    result = _run_serving("--model-dir", str(tmp_path), "--allow-anonymous")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'model.json'}")


def test_server_refuses_to_start_open_without_being_asked(yolox_package: Path) -> None:
    result = _run_serving("--model-dir", str(yolox_package))
    assert result.returncode == 2
    assert "no credentials configured" in result.stderr.strip().splitlines()[-1]


def _run_serving(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "serving", "--http-port", str(free_port()), *args]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_concurrent_requests_are_batched_together(yolox_package: Path) -> None:
    import concurrent.futures

    process, served = start_server(
        yolox_package, "--allow-anonymous", "--max-batch-size", "4", "--max-latency-ms", "400"
    )
    try:
        body = {"image_b64": _b64(fixture_path("images/zidane.jpg"))}
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(lambda _: served.v1(body), range(4)))
        assert [r.status_code for r in responses] == [200] * 4
        metrics = httpx.get(f"{served.url}/metrics").text
        single = _metric(metrics, 'cvops_batch_size_bucket{le="1.0",model="detector"}')
        total = _metric(metrics, 'cvops_batch_size_count{model="detector"}')
        assert total < 4, "four concurrent frames should share fewer than four detector calls"
        assert single < total or total == 1
    finally:
        process.terminate()
        process.wait(timeout=30)


def _metric(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not in /metrics")


def test_reload_refuses_a_broken_package_and_keeps_serving(yolox_package: Path, tmp_path: Path) -> None:
    import shutil
    import signal

    package = tmp_path / "package"
    shutil.copytree(yolox_package, package)
    process, served = start_server(package, "--allow-anonymous", "--grpc-port", "0")
    body = {"image_b64": _b64(fixture_path("images/bus.jpg"))}
    try:
        (package / "model.onnx").write_bytes(b"not an onnx graph")
        process.send_signal(signal.SIGHUP)
        _wait_for_metric(served, 'cvops_model_reloads_total{result="refused"}')
        assert served.v1(body).status_code == 200, "the loaded model keeps serving"
        shutil.copyfile(yolox_package / "model.onnx", package / "model.onnx")
        process.send_signal(signal.SIGHUP)
        _wait_for_metric(served, 'cvops_model_reloads_total{result="loaded"}')
        assert served.v1(body).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_for_metric(server: Server, series: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if _metric(httpx.get(f"{server.url}/metrics").text, series) >= 1:
                return
        except AssertionError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{series} never reached 1")


def test_reid_gives_people_seen_by_two_streams_one_global_id(yolox_package: Path) -> None:
    """Two overlapping crops of real MOT17 frames act as two cameras; people in the overlap match."""
    process, served = start_server(
        yolox_package, "--allow-anonymous", "--reid-model",
        str(fixture_path("models/osnet_x0_25_msmt17/osnet_x0_25_msmt17.onnx")),
    )  # fmt: skip
    try:
        images = sorted(fixture_path("mot17-mini/train/MOT17-04-FRCNN/img1").glob("*.jpg"))[:4]
        width = cv2.imread(str(images[0])).shape[1]
        left_end, right_start = int(width * 0.6), int(width * 0.4)
        for index, path in enumerate(images):
            frame = cv2.imread(str(path))
            crops = {"cam-a": frame[:, :left_end], "cam-b": frame[:, right_start:]}
            results = {
                cam: FrameResult.model_validate(
                    served.v1({"image_b64": base64.b64encode(_jpeg(crop)).decode(), "stream_id": cam,
                               "frame_index": index, "timestamp": index / 30}).json()["predictions"][0]
                )
                for cam, crop in crops.items()
            }  # fmt: skip
    finally:
        process.terminate()
        process.wait(timeout=30)
    a, b = results["cam-a"].detections, results["cam-b"].detections
    pairs = []
    for box_a in a:
        for box_b in b:
            shifted = np.array(box_b.xyxy) + np.array([right_start, 0, right_start, 0])
            iou = box_iou(np.array([box_a.xyxy], np.float32), shifted[None].astype(np.float32))[0, 0]
            if iou > 0.7 and box_a.global_id and box_a.global_id > 0:
                pairs.append((box_a.global_id, box_b.global_id))
    assert len(pairs) >= 3, "people in the overlap are tracked on both streams"
    assert sum(ga == gb for ga, gb in pairs) >= 0.7 * len(pairs)
    own = [d.global_id for d in a if d.global_id is not None and d.global_id > 0]
    assert len(own) == len(set(own)), "one global id per person within a frame"


def test_serves_a_registry_alias_and_follows_a_promotion_on_reload(
    yolox_package: Path, tmp_path: Path
) -> None:
    """``--model-dir models:/NAME@champion`` against the embedded MLflow registry (sqlite)."""
    import signal

    from cvops.registry.mlflow_registry import ModelRegistry

    registry = ModelRegistry(state_dir=tmp_path / "state")
    first = registry.register(yolox_package, "det")
    registry.promote("det", first.version, who="test", why="first champion")
    process, served = start_server(
        yolox_package, "--allow-anonymous", "--grpc-port", "0", "--model-dir", "models:/det@champion",
        env={"CVOPS_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    body = {"image_b64": _b64(fixture_path("images/bus.jpg"))}
    cache = tmp_path / "state" / "registry-cache" / "det"
    try:
        assert served.v1(body).status_code == 200
        assert (cache / f"{first.version}-{first.run_id}" / "model.json").is_file()
        second = registry.register(yolox_package, "det")
        registry.promote("det", second.version, who="test", why="better")
        process.send_signal(signal.SIGHUP)
        _wait_for_metric(served, 'cvops_model_reloads_total{result="loaded"}')
        assert (cache / f"{second.version}-{second.run_id}" / "model.json").is_file(), (
            "the reload fetched the new champion"
        )
        assert served.v1(body).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
