"""Bounded retries for registry calls: exponential backoff, a deadline, then one clear error.

MLflow's HTTP client retries on its own (7 times with backoff by default, minutes against a
dead server) and reads its settings from environment variables at each request. While cvops
makes a registry call it sets those variables so that MLflow makes one attempt with a bounded
timeout, and cvops does the retrying here, where the total time is known. The variables are
process-wide: they are set under a lock for the duration of one call and then restored, so
registry calls of one process run one at a time, and another thread's MLflow call made at that
very moment also runs without MLflow's own retries. The same block silences MLflow's progress
bars and its "View run at" links on stdout, which would break the CLI's output.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from cvops.errors import InvalidInputError, RegistryUnavailableError

T = TypeVar("T")

logger = logging.getLogger(__name__)

_MLFLOW_HTTP_ENV_LOCK = threading.RLock()
# HTTP statuses a proxy or server answers while the service behind it is down or starting.
_UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one registry call.

    Attributes:
        attempts: Attempts in all, the first included.
        first_backoff_s: Sleep after the first failure; doubled after each further one.
        max_backoff_s: Upper bound of one sleep.
        deadline_s: No new attempt starts when it would begin later than this after the first.
        request_timeout_s: Timeout of one HTTP request (connect and read), whole seconds.
    """

    attempts: int = 4
    first_backoff_s: float = 0.5
    max_backoff_s: float = 4.0
    deadline_s: float = 20.0
    request_timeout_s: int = 30

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.first_backoff_s < 0 or self.max_backoff_s < self.first_backoff_s:
            got = f"attempts={self.attempts}, backoff {self.first_backoff_s}..{self.max_backoff_s} s"
            raise InvalidInputError(f"retry policy: expected attempts >= 1 and 0 <= first <= max, got {got}")
        if self.deadline_s < 0 or self.request_timeout_s < 1:
            got = f"deadline_s={self.deadline_s}, request_timeout_s={self.request_timeout_s}"
            raise InvalidInputError(
                f"retry policy: expected deadline_s >= 0, request_timeout_s >= 1, got {got}"
            )

    def backoff_s(self, failures: int) -> float:
        """Return the sleep after ``failures`` failed attempts (1, 2, ...): 0.5, 1, 2, 4, 4..."""
        return float(min(self.first_backoff_s * 2 ** (failures - 1), self.max_backoff_s))


NO_RETRY = RetryPolicy(attempts=1, deadline_s=0.0, request_timeout_s=5)
"""One attempt: for best-effort cleanup after a failure, which must not double the wait."""


def call_with_retry(
    call: Callable[[], T],
    *,
    what: str,
    where: str,
    policy: RetryPolicy,
    is_transient: Callable[[BaseException], bool],
    retry_on: tuple[type[Exception], ...],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``call``; retry transient failures with exponential backoff within the policy's bounds.

    Args:
        call: The operation, without arguments.
        what: What it does, for the error message (``create model version``).
        where: The service, for the error message (the tracking URI).
        policy: Attempts, backoff and deadline.
        is_transient: Whether a caught error means the service is unreachable (worth retrying).
        retry_on: The exception types to inspect; others pass through untouched.
        sleep: Injectable for tests.
        clock: Monotonic seconds; injectable for tests.

    Raises:
        RegistryUnavailableError: When every attempt failed with a transient error, or the
            deadline left no time for another; it names ``where`` and chains the last error.
        Exception: A non-transient error of ``retry_on`` (or any other) is raised unchanged.
    """
    started = clock()
    failures = 0
    while True:
        try:
            return call()
        except retry_on as error:
            if not is_transient(error):
                raise
            failures += 1
            pause = policy.backoff_s(failures)
            elapsed = clock() - started
            if failures >= policy.attempts or elapsed + pause > policy.deadline_s:
                raise RegistryUnavailableError(
                    f"model registry at {where} unreachable: {what} failed {failures} time(s) "
                    f"in {elapsed:.1f} s; last error: {_first_line(error)}"
                ) from error
            logger.info(  # INFO: the final error says it all; -v shows the attempts
                "model registry at %s: %s failed (%s); attempt %d of %d in %.1f s",
                where,
                what,
                _first_line(error),
                failures + 1,
                policy.attempts,
                pause,
            )
            sleep(pause)


def _first_line(error: BaseException) -> str:
    """Return the root cause's message (``[Errno 111] Connection refused``), one line, bounded."""
    root = error
    seen = {id(root)}
    while (cause := root.__cause__ or root.__context__) is not None and id(cause) not in seen:
        seen.add(id(cause))
        root = cause
    text = str(root).strip().splitlines()
    return (text[0] if text else type(root).__name__)[:300]


def is_unreachable_error(error: BaseException) -> bool:
    """Whether an MLflow error means the server could not be reached (retrying may help).

    True when the chain of causes holds a connection failure or a timeout, or when the server
    answered 502, 503 or 504. A 4xx, a server-side 500 or a sqlite error are not retried.
    MLflow wraps requests' errors, which wrap urllib3's, which keep the socket's builtin
    ``ConnectionRefusedError``, ``ConnectionResetError`` or ``TimeoutError`` as their cause.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        status = getattr(current, "get_http_status_code", None)
        if callable(status) and status() in _UNAVAILABLE_STATUSES:
            return True
        current = current.__cause__ or current.__context__
    return False


@contextmanager
def mlflow_call_environment(request_timeout_s: int) -> Iterator[None]:
    """Make MLflow's HTTP client try once, with a bounded timeout and quietly, while the block runs.

    Holds a process-wide lock for the block (MLflow reads these settings from the environment)
    and restores the previous values afterwards.
    """
    settings = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(request_timeout_s),
        # Quiet: no progress bars on stderr, no "View run at" links on stdout.
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    }
    with _MLFLOW_HTTP_ENV_LOCK:
        saved = {key: os.environ.get(key) for key in settings}
        os.environ.update(settings)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
