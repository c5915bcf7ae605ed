"""The ASGI gate in front of the model routes: size, content type, auth, rate and load limits.

Health, readiness and ``/metrics`` stay open. Every refusal is a JSON ``{"error": ...}`` with
the right status (401, 403, 411, 413, 415, 429 with ``Retry-After``, 503) and is counted in
``cvops_rejected_requests{reason}``; request latency is observed for every model route.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from cvops.errors import InvalidInputError
from cvops.serving.auth import AuthenticationError, Authenticator, ForbiddenError
from cvops.serving.limits import InFlightLimit, RateLimiter
from cvops.serving.metrics import ServingMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_MODEL_PATH = re.compile(r"^/v(?P<protocol>[12])/(?:repository/)?models/(?P<model>[^/:]+)")
# Health, readiness, metrics and the API description stay open; everything else needs credentials.
_OPEN_PATHS = frozenset({"/", "/metrics", "/openapi.json", "/v2", "/v2/health/live", "/v2/health/ready"})
_OPEN_PATTERN = re.compile(r"^/v2/models/[^/]+/ready$|^/v1/models/[^/:]+$")
ACCEPTED_CONTENT_TYPES = frozenset({"application/json", "application/octet-stream"})


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Limits of the gate.

    Attributes:
        max_body_bytes: Largest request body accepted (413 above).
        max_in_flight: Requests served at once before shedding with 503.
        models: Names used as metric labels; any other name in a URL is labeled ``other``, so
            clients cannot grow the number of metric series without bound.
    """

    max_body_bytes: int = 16 * 1024 * 1024
    max_in_flight: int = 64
    models: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        """Reject impossible limits."""
        if self.max_body_bytes < 1 or self.max_in_flight < 1:
            got = f"{self.max_body_bytes}, {self.max_in_flight}"
            raise InvalidInputError(f"expected max_body_bytes, max_in_flight >= 1, got {got}")


class _Refusal(Exception):
    def __init__(self, status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.headers = status, reason, message, headers or {}


class Gateway:
    """ASGI middleware wrapping the model server's app."""

    def __init__(
        self,
        app: App,
        config: GatewayConfig,
        metrics: ServingMetrics,
        authenticator: Authenticator | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        """Wrap ``app``; no authenticator means anonymous access (explicitly chosen at the edge)."""
        self.app = app
        self.config = config
        self.metrics = metrics
        self.authenticator = authenticator
        self.rate_limiter = rate_limiter
        self.in_flight = InFlightLimit(config.max_in_flight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then pass it on and time it."""
        path = scope.get("path", "")
        if scope["type"] == "http" and _names_a_version(path, scope.get("query_string", b"")):
            # KServe answers 501 here; a client error it is: versions are separate model names.
            message = "model versions are not addressable: each version is served under its own model name"
            self.metrics.rejected.labels(reason="invalid").inc()
            await _reply(send, 400, message, {})
            return
        if scope["type"] != "http" or path in _OPEN_PATHS or _OPEN_PATTERN.match(path):
            await self.app(scope, receive, send)
            return
        match = _MODEL_PATH.match(path)
        model, protocol = (match["model"], f"v{match['protocol']}") if match else ("", "other")
        label = model if model in self.config.models else "other"
        start = time.perf_counter()
        status = {"code": 500}
        try:
            self._admit(scope, model)
        except _Refusal as refusal:
            self.metrics.rejected.labels(reason=refusal.reason).inc()
            await _reply(send, refusal.status, refusal.message, refusal.headers)
            self.metrics.request_seconds.labels(label, protocol, str(refusal.status)).observe(
                time.perf_counter() - start
            )
            return
        self.metrics.in_flight.inc()

        async def send_and_watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            self.in_flight.leave()
            self.metrics.in_flight.dec()
            if 400 <= status["code"] < 500:
                self.metrics.rejected.labels(reason="invalid").inc()
            self.metrics.request_seconds.labels(label, protocol, str(status["code"])).observe(
                time.perf_counter() - start
            )

    def _admit(self, scope: Scope, model: str) -> None:
        """Raise a refusal unless the request may go on (``model`` empty: no model route)."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        caller = "anonymous"
        if self.authenticator is not None:
            try:
                principal = self.authenticator.authenticate(
                    headers.get("x-api-key"), headers.get("authorization")
                )
                principal.check_model(model or None)
            except AuthenticationError as error:
                raise _Refusal(401, "auth", str(error), {"WWW-Authenticate": "Bearer"}) from error
            except ForbiddenError as error:
                raise _Refusal(403, "forbidden", str(error)) from error
            caller = principal.id
        if scope.get("method") == "POST":
            self._check_body(headers)
        if self.rate_limiter is not None:
            wait_s = self.rate_limiter.retry_after_s(caller)
            if wait_s > 0:
                raise _Refusal(
                    429,
                    "rate",
                    f"rate limit exceeded for {caller!r}",
                    {"Retry-After": str(math.ceil(wait_s))},
                )
        if not self.in_flight.try_enter():
            raise _Refusal(503, "in_flight", "server at capacity, retry later", {"Retry-After": "1"})

    def _check_body(self, headers: dict[str, str]) -> None:
        length = headers.get("content-length")
        if length is None:
            raise _Refusal(411, "size", "Content-Length header required")
        if not length.isdigit() or int(length) > self.config.max_body_bytes:
            raise _Refusal(413, "size", f"body of {length} bytes exceeds {self.config.max_body_bytes} bytes")
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in ACCEPTED_CONTENT_TYPES:
            raise _Refusal(
                415, "content_type", f"content type {content_type or 'none'!r}: expected application/json"
            )


def _names_a_version(path: str, query: bytes) -> bool:
    return "/versions/" in path or any(part.startswith(b"model_version=") for part in query.split(b"&"))


async def _reply(send: Send, status: int, message: str, headers: dict[str, str]) -> None:
    body = json.dumps({"error": message}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
