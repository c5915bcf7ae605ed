"""Bounded retries of registry calls: backoff, deadline, which errors count as unreachable."""

from __future__ import annotations

import os

import pytest

from cvops.errors import RegistryUnavailableError
from cvops.registry.retry import RetryPolicy, call_with_retry, is_unreachable_error, mlflow_call_environment
from tests.conftest import FakeClock


class HttpError(Exception):
    """Stands in for MlflowException: an error that knows the HTTP status it came with."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status

    def get_http_status_code(self) -> int:
        return self.status


def wrapped(cause: BaseException) -> RuntimeError:
    """An error raised while handling ``cause``, as MLflow wraps requests' errors."""
    try:
        raise cause
    except BaseException as error:
        try:
            raise RuntimeError("API request failed") from error
        except RuntimeError as outer:
            return outer


class Flaky:
    """Fails ``failures`` times with ``error``, then returns "ok"; advances the clock per call."""

    def __init__(self, failures: int, error: Exception, clock: FakeClock, call_s: float = 0.1) -> None:
        self.failures = failures
        self.error = error
        self.clock = clock
        self.call_s = call_s
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        self.clock.now += self.call_s
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def run(call: Flaky, policy: RetryPolicy, clock: FakeClock, sleeps: list[float]) -> str:
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    return call_with_retry(
        call,
        what="create model version",
        where="http://127.0.0.1:5000",
        policy=policy,
        is_transient=is_unreachable_error,
        retry_on=(RuntimeError, HttpError),
        sleep=sleep,
        clock=clock,
    )


REFUSED = wrapped(ConnectionRefusedError(111, "Connection refused"))


@pytest.mark.parametrize(
    ("failures", "policy", "calls", "sleeps"),
    [
        (0, RetryPolicy(), 1, []),
        (2, RetryPolicy(), 3, [0.5, 1.0]),
        (3, RetryPolicy(attempts=4), 4, [0.5, 1.0, 2.0]),
        (5, RetryPolicy(attempts=6, max_backoff_s=1.5, deadline_s=60), 6, [0.5, 1.0, 1.5, 1.5, 1.5]),
    ],
    ids=["first-try", "two-failures", "last-attempt", "backoff-capped"],
)
def test_transient_failures_are_retried_with_exponential_backoff(
    failures: int, policy: RetryPolicy, calls: int, sleeps: list[float]
) -> None:
    clock = FakeClock()
    call = Flaky(failures, REFUSED, clock)
    slept: list[float] = []
    assert run(call, policy, clock, slept) == "ok"
    assert (call.calls, slept) == (calls, sleeps)


@pytest.mark.parametrize(
    ("policy", "calls", "elapsed_s"),
    [
        (RetryPolicy(attempts=3), 3, 1.8),  # 3 calls of 0.1 s + 0.5 + 1.0 s of backoff
        (RetryPolicy(attempts=10, deadline_s=2.0), 3, 1.8),  # a fourth would start after 3.8 s
    ],
    ids=["attempts", "deadline"],
)
def test_exhausted_retries_raise_unavailable_naming_the_uri(
    policy: RetryPolicy, calls: int, elapsed_s: float
) -> None:
    clock = FakeClock()
    call = Flaky(100, REFUSED, clock)
    with pytest.raises(RegistryUnavailableError) as caught:
        run(call, policy, clock, [])
    assert call.calls == calls
    assert clock.now == pytest.approx(elapsed_s)
    message = str(caught.value)
    assert "http://127.0.0.1:5000 unreachable: create model version failed" in message
    assert message.endswith("last error: [Errno 111] Connection refused")
    assert caught.value.__cause__ is REFUSED


def test_non_transient_error_is_raised_at_once_unchanged() -> None:
    clock = FakeClock()
    error = HttpError(400)
    call = Flaky(1, error, clock)
    with pytest.raises(HttpError) as caught:
        run(call, RetryPolicy(), clock, [])
    assert (caught.value, call.calls) == (error, 1)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (REFUSED, True),
        (wrapped(TimeoutError("timed out")), True),
        (wrapped(ConnectionResetError("reset by peer")), True),
        (HttpError(503), True),
        (HttpError(504), True),
        (HttpError(500), False),
        (HttpError(404), False),
        (wrapped(ValueError("bad value")), False),
    ],
    ids=["refused", "timeout", "reset", "503", "504", "500", "404", "other"],
)
def test_which_errors_mean_unreachable(error: BaseException, expected: bool) -> None:
    assert is_unreachable_error(error) is expected


def test_mlflow_call_environment_sets_then_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    with mlflow_call_environment(12):
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "12"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "7"
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ
