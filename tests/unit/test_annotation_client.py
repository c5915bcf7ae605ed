"""The Label Studio client against real loopback sockets: down, slow, flaky; retries and breaker."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cvops.annotation.client import LabelStudioClient
from cvops.errors import AnnotationServerError, AnnotationUnavailableError
from cvops.processes import free_port
from cvops.registry.retry import RetryPolicy
from cvops.serving.breaker import CircuitBreaker

FAST = RetryPolicy(attempts=3, first_backoff_s=0.01, max_backoff_s=0.02, deadline_s=5.0, request_timeout_s=1)


class _FlakyServer(ThreadingHTTPServer):
    """Answers 503 to the first ``failures`` requests, then 200 with JSON (or 400 for /bad)."""

    def __init__(self, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), _Flaky)
        self.failures = failures
        self.seen: list[str] = []


class _Flaky(BaseHTTPRequestHandler):
    server: _FlakyServer

    def do_GET(self) -> None:
        self.server.seen.append(self.headers.get("Authorization", ""))
        if len(self.server.seen) <= self.server.failures:
            self._answer(503, {"detail": "starting"})
        elif self.path.startswith("/bad"):
            self._answer(400, {"detail": "no such field"})
        else:
            self._answer(200, {"ok": True})

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[_FlakyServer]:
    server = _FlakyServer(failures=2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: _FlakyServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_503_is_retried_with_backoff_until_the_server_answers(flaky: _FlakyServer) -> None:
    pauses: list[float] = []
    with LabelStudioClient(_url(flaky), "secret", FAST, sleep=pauses.append) as client:
        assert client.get("/api/projects/") == {"ok": True}
    assert pauses == [0.01, 0.02]
    assert flaky.seen == ["Token secret"] * 3


def test_a_client_error_is_not_retried_and_names_the_status(flaky: _FlakyServer) -> None:
    flaky.failures = 0
    with (
        LabelStudioClient(_url(flaky), "t", FAST) as client,
        pytest.raises(
            AnnotationServerError, match=r"GET /bad: expected success, got HTTP 400: .*no such field"
        ),
    ):
        client.get("/bad")
    assert len(flaky.seen) == 1


def test_server_down_gives_a_clear_error_after_retries_then_the_breaker_fails_fast() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    breaker = CircuitBreaker("label studio", failure_threshold=2, reset_timeout_s=60.0)
    client = LabelStudioClient(url, "t", FAST, breaker=breaker)
    for _ in range(2):
        with pytest.raises(
            AnnotationUnavailableError,
            match=rf"label studio at {url} unreachable: GET /api/projects/ failed 3 time\(s\)",
        ):
            client.get("/api/projects/")
    started = time.monotonic()
    with pytest.raises(AnnotationUnavailableError, match="circuit breaker is open"):
        client.get("/api/projects/")
    assert time.monotonic() - started < 0.05
    client.close()


def test_a_server_that_never_answers_times_out_per_request_and_then_fails() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        policy = RetryPolicy(
            attempts=2, first_backoff_s=0.01, max_backoff_s=0.01, deadline_s=5.0, request_timeout_s=1
        )
        started = time.monotonic()
        with (
            LabelStudioClient(url, "t", policy) as client,
            pytest.raises(AnnotationUnavailableError, match=r"failed 2 time\(s\).*ReadTimeout"),
        ):
            client.get("/api/projects/")
        assert 1.9 < time.monotonic() - started < 4.0
