from __future__ import annotations

import pytest

from cvops.serving.breaker import BreakerOpenError, BreakerState, CircuitBreaker
from tests.conftest import FakeClock


def test_breaker_opens_fails_fast_then_half_opens_and_closes() -> None:
    clock = FakeClock()
    seen: list[BreakerState] = []
    breaker = CircuitBreaker(
        "up", failure_threshold=2, reset_timeout_s=5, clock=clock, on_state=lambda _, s: seen.append(s)
    )
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(BreakerOpenError, match="circuit open"):
        breaker.before_call()
    clock.now = 5.0
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.before_call()  # the trial call
    with pytest.raises(BreakerOpenError, match="trial call in progress"):
        breaker.before_call()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert seen == [BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_failed_trial_opens_again_and_success_resets_the_count() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("up", failure_threshold=2, reset_timeout_s=1, clock=clock)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED, "failures must be consecutive"
    breaker.record_failure()
    clock.now = 1.0
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
