"""A small Label Studio REST client: bounded retries with backoff, and a circuit breaker.

Plain httpx against the REST API (``/api/...``), authenticated with the admin's API token
(``Authorization: Token ...``). A connection failure, a timeout or a 502/503/504 is retried with
exponential backoff (:class:`~cvops.registry.retry.RetryPolicy`); when every attempt failed the
call raises :class:`~cvops.errors.AnnotationUnavailableError` naming the server. Consecutive
failed calls open a :class:`~cvops.serving.breaker.CircuitBreaker`, so further calls fail at
once instead of waiting out their retries again. Other HTTP errors (4xx, 500) are not retried:
they raise :class:`~cvops.errors.AnnotationServerError` with the status and the server's answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from cvops.errors import AnnotationServerError, AnnotationUnavailableError
from cvops.registry.retry import RetryPolicy
from cvops.serving.breaker import BreakerOpenError, CircuitBreaker

logger = logging.getLogger(__name__)

DEFAULT_RETRY = RetryPolicy(
    attempts=4, first_backoff_s=0.5, max_backoff_s=4.0, deadline_s=20.0, request_timeout_s=30
)
"""Four attempts within 20 s, 30 s per request (an import of many tasks takes seconds)."""

_UNAVAILABLE_STATUSES = frozenset({502, 503, 504})
_PAGE_SIZE = 100


class LabelStudioClient:
    """Calls one Label Studio server's REST API."""

    def __init__(
        self,
        url: str,
        token: str,
        policy: RetryPolicy = DEFAULT_RETRY,
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Prepare a client; nothing is sent yet.

        Args:
            url: Base URL of the server (``http://127.0.0.1:8080``).
            token: API token of a user (the admin's, from :func:`~cvops.annotation.server.start_server`).
            policy: Attempts, backoff, deadline and per-request timeout of each call.
            breaker: Shared breaker; a new one (3 failed calls open it for 10 s) when None.
            sleep: Injectable for tests.
        """
        self.url = url.rstrip("/")
        self._policy = policy
        self._breaker = breaker or CircuitBreaker(f"label studio at {self.url}", 3, 10.0)
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Token {token}", "Accept": "application/json"},
            timeout=float(policy.request_timeout_s),
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> LabelStudioClient:
        """Return self; the connections close on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the connection pool."""
        self.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a path and return its JSON."""
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        """POST JSON to a path and return the JSON answer."""
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: Any) -> Any:
        """PATCH JSON to a path and return the JSON answer."""
        return self.request("PATCH", path, body=body)

    def delete(self, path: str) -> None:
        """DELETE a path."""
        self.request("DELETE", path)

    def get_pages(self, path: str, key: str, params: dict[str, Any] | None = None) -> list[Any]:
        """GET every page of a paginated list (``page``/``page_size``) and return its items.

        Args:
            path: The list endpoint.
            key: The key of the items in each page's JSON (``tasks``, ``results``).
            params: Further query parameters.
        """
        items: list[Any] = []
        page = 1
        while True:
            query = {**(params or {}), "page": page, "page_size": _PAGE_SIZE}
            try:
                answer = self.get(path, query)
            except AnnotationServerError as error:
                if "HTTP 404" in str(error) and page > 1:  # past the last page
                    return items
                raise
            chunk = answer.get(key, []) if isinstance(answer, dict) else answer
            items.extend(chunk)
            total = answer.get("total", answer.get("count")) if isinstance(answer, dict) else None
            if len(chunk) < _PAGE_SIZE or (isinstance(total, int) and len(items) >= total):
                return items
            page += 1

    def request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        """Send one request with retries and the breaker; return its JSON (None when empty).

        Raises:
            AnnotationUnavailableError: The server did not answer (refused, timed out, 502-504)
                within the retry policy, or the breaker is open after earlier failures.
            AnnotationServerError: The server answered another error status.
        """
        what = f"{method} {path}"
        try:
            self._breaker.before_call()
        except BreakerOpenError as error:
            raise AnnotationUnavailableError(
                f"label studio at {self.url} unreachable: {what} refused at once, the circuit breaker "
                "is open after repeated failed calls; is the server up? (`cvops labelstudio status`)"
            ) from error
        started = time.monotonic()
        failures = 0
        while True:
            try:
                response = self._http.request(method, path, json=body, params=params)
            except httpx.TransportError as error:
                last = f"{type(error).__name__}: {error}"
                cause: BaseException = error
            else:
                if response.status_code not in _UNAVAILABLE_STATUSES:
                    self._breaker.record_success()  # the server answered, even if with an error
                    return _json_or_raise(response, what, self.url)
                last = f"HTTP {response.status_code}"
                cause = AnnotationServerError(last)
            failures += 1
            pause = self._policy.backoff_s(failures)
            elapsed = time.monotonic() - started
            if failures >= self._policy.attempts or elapsed + pause > self._policy.deadline_s:
                self._breaker.record_failure()
                raise AnnotationUnavailableError(
                    f"label studio at {self.url} unreachable: {what} failed {failures} time(s) in "
                    f"{elapsed:.1f} s; last error: {last[:300]}"
                ) from cause
            logger.info("label studio: %s failed (%s); retry %d in %.1f s", what, last, failures, pause)
            self._sleep(pause)


def _json_or_raise(response: httpx.Response, what: str, url: str) -> Any:
    if response.status_code >= 400:
        text = " ".join(response.text.split())[:300]
        raise AnnotationServerError(
            f"label studio at {url}: {what}: expected success, got HTTP {response.status_code}: {text}"
        )
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError as error:
        raise AnnotationServerError(
            f"label studio at {url}: {what}: expected JSON, got {response.text[:200]!r}"
        ) from error
