"""Authentication, authorization, rate and size limits, and metrics of a real server process."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cvops.serving.auth import hash_api_key
from tests.conftest import fixture_path
from tests.integration.test_serving import Server, grpc_infer_request, start_server

pytestmark = pytest.mark.integration

HS256_SECRET = "s" * 40
KEY_ALL, KEY_OTHER, KEY_ROTATED = (
    "key-all-models-0123456789",
    "key-other-model-0123456789",
    "key-new-0123456789",
)


def _write_keys(path: Path, keys: dict[str, list[str]]) -> None:
    entries = [{"id": key[:7], "sha256": hash_api_key(key), "models": models} for key, models in keys.items()]
    path.write_text(json.dumps({"keys": entries}))
    # Make sure the modification time moves even on coarse-grained file systems.
    stamp = time.time_ns() + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


@pytest.fixture(scope="module")
def rsa_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_file = tmp_path_factory.mktemp("rsa") / "public.pem"
    public_file.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, public_file


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "api-keys.json"
    _write_keys(path, {KEY_ALL: ["*"], KEY_OTHER: ["some-other-model"]})
    return path


@pytest.fixture(scope="module")
def secured(yolox_package: Path, keys_file: Path) -> Iterator[Server]:
    process, served = start_server(
        yolox_package, "--api-keys-file", str(keys_file), "--jwt-algorithm", "HS256",
        "--rate-per-s", "2", "--burst", "3", "--max-body-mb", "1",
        env={"CVOPS_JWT_SECRET": HS256_SECRET},
    )  # fmt: skip
    yield served
    process.terminate()
    process.wait(timeout=30)


def _body() -> dict[str, object]:
    return {
        "instances": [
            {"image_b64": base64.b64encode(fixture_path("images/zidane.jpg").read_bytes()).decode()}
        ]
    }


def _predict(
    server: Server, headers: dict[str, str], body: dict[str, object] | None = None
) -> httpx.Response:
    url = f"{server.url}/v1/models/detector:predict"
    return httpx.post(url, json=body or _body(), headers=headers, timeout=60)


def _token(claims: dict[str, object], key: str | bytes = HS256_SECRET, algorithm: str = "HS256") -> str:
    import jwt

    return jwt.encode({"sub": "cam-7", "exp": int(time.time()) + 60, **claims}, key, algorithm=algorithm)


def test_health_stays_open_and_metrics_are_exported(secured: Server) -> None:
    assert httpx.get(f"{secured.url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{secured.url}/v2/models/detector/ready").status_code == 200
    metrics = httpx.get(f"{secured.url}/metrics").text
    for name in ("cvops_request_seconds", "cvops_rejected_requests_total", "cvops_requests_in_flight"):
        assert name in metrics


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "credentials required"),
        ({"X-API-Key": "wrong"}, 401, "not recognized"),
        ({"X-API-Key": KEY_OTHER}, 403, "no access to model 'detector'"),
        ({"Authorization": "Basic abc"}, 401, "Bearer"),
        ({"Authorization": "Bearer not-a-jwt"}, 401, "bearer token rejected"),
    ],
    ids=["no-credentials", "unknown-key", "key-for-other-model", "basic-auth", "garbage-token"],
)
def test_credentials_are_checked(secured: Server, headers: dict[str, str], status: int, message: str) -> None:
    response = _predict(secured, headers)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_hs256_tokens_expiry_and_model_claims(secured: Server) -> None:
    assert _predict(secured, {"Authorization": f"Bearer {_token({})}"}).status_code == 200
    expired = _token({"exp": int(time.time()) - 10})
    assert _predict(secured, {"Authorization": f"Bearer {expired}"}).status_code == 401
    other = _token({"models": ["other"]})
    assert _predict(secured, {"Authorization": f"Bearer {other}"}).status_code == 403
    forged = _token({}, key="x" * 40)
    assert _predict(secured, {"Authorization": f"Bearer {forged}"}).status_code == 401


def test_rate_limit_per_key_answers_429_with_retry_after(secured: Server) -> None:
    time.sleep(2)  # let earlier tests' tokens refill
    headers = {"X-API-Key": KEY_ALL}
    statuses = [_predict(secured, headers, {"instances": [{"image_b64": "eA=="}]}) for _ in range(8)]
    codes = [r.status_code for r in statuses]
    assert 429 in codes, codes
    refused = next(r for r in statuses if r.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    # Another caller has its own bucket.
    assert _predict(secured, {"Authorization": f"Bearer {_token({'sub': 'fresh'})}"}).status_code == 200


def test_body_size_and_content_type_are_enforced(secured: Server) -> None:
    time.sleep(2)
    url = f"{secured.url}/v1/models/detector:predict"
    headers = {"X-API-Key": KEY_ALL}
    big = httpx.post(
        url,
        content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={**headers, "content-type": "application/json"},
    )
    assert big.status_code == 413
    text = httpx.post(url, content=b"hello", headers={**headers, "content-type": "text/plain"})
    assert text.status_code == 415
    metrics = httpx.get(f"{secured.url}/metrics").text
    assert 'cvops_rejected_requests_total{reason="size"}' in metrics


def test_api_keys_rotate_without_restart(secured: Server, keys_file: Path) -> None:
    time.sleep(2)
    _write_keys(keys_file, {KEY_ROTATED: ["detector"]})
    try:
        assert _predict(secured, {"X-API-Key": KEY_ALL}).status_code == 401
        assert _predict(secured, {"X-API-Key": KEY_ROTATED}).status_code == 200
    finally:
        _write_keys(keys_file, {KEY_ALL: ["*"], KEY_OTHER: ["some-other-model"]})


def test_rs256_tokens(yolox_package: Path, rsa_keys: tuple[bytes, Path]) -> None:
    private_pem, public_file = rsa_keys
    process, served = start_server(
        yolox_package, "--jwt-algorithm", "RS256", "--jwt-public-key", str(public_file)
    )
    try:
        good = _token({}, key=private_pem, algorithm="RS256")
        assert _predict(served, {"Authorization": f"Bearer {good}"}).status_code == 200
        hs_token = _token({})  # right claims, wrong algorithm
        assert _predict(served, {"Authorization": f"Bearer {hs_token}"}).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/repository/models/detector/unload"),
        ("POST", "/v2/repository/models/detector/load"),
        ("GET", "/v2/models/detector"),
        ("GET", "/v2/models"),
        ("POST", "/v1/models/detector:explain"),
    ],
    ids=["unload", "load", "v2-metadata", "model-list", "explain"],
)
def test_every_non_health_route_needs_credentials(secured: Server, method: str, path: str) -> None:
    response = httpx.request(method, f"{secured.url}{path}", timeout=30)
    assert response.status_code == 401, response.text
    assert httpx.get(f"{secured.url}/v2/models/detector/ready").status_code == 200


def test_grpc_needs_the_same_credentials(secured: Server) -> None:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    request = grpc_infer_request(fixture_path("images/zidane.jpg"))
    time.sleep(2)  # refill the rate bucket
    with grpc.insecure_channel(secured.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=30).ready
        with pytest.raises(grpc.RpcError) as anonymous:
            stub.ModelInfer(request, timeout=30)
        assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as other:
            stub.ModelInfer(request, timeout=30, metadata=[("x-api-key", KEY_OTHER)])
        assert other.value.code() is grpc.StatusCode.PERMISSION_DENIED
        reply = stub.ModelInfer(request, timeout=60, metadata=[("x-api-key", KEY_ALL)])
        assert reply.outputs[0].name == "results"


def test_unknown_model_names_do_not_create_metric_series(secured: Server) -> None:
    for i in range(3):
        httpx.post(f"{secured.url}/v1/models/random-{i}:predict", json={}, timeout=30)
    metrics = httpx.get(f"{secured.url}/metrics").text
    assert "random-" not in metrics
    assert 'cvops_request_seconds_count{code="401",model="other",protocol="v1"}' in metrics
