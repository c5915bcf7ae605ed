"""A circuit breaker for calls to a remote dependency (an upstream server, a registry).

Closed: calls pass; ``failure_threshold`` consecutive failures open it. Open: calls are refused
at once for ``reset_timeout_s``. Half-open: one trial call is let through; success closes the
breaker, failure opens it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import IntEnum

from cvops.errors import CvopsError, InvalidInputError


class BreakerState(IntEnum):
    """Breaker states; the value is what the ``cvops_breaker_state`` gauge exports."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class BreakerOpenError(CvopsError, ConnectionError):
    """A call was refused because the breaker is open."""


class CircuitBreaker:
    """Counts failures of one dependency and refuses calls while it is down. Thread-safe."""

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        reset_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_state: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        """Start closed.

        Args:
            name: The dependency, for errors and metrics.
            failure_threshold: Consecutive failures that open the breaker.
            reset_timeout_s: Seconds the breaker stays open before a trial call.
            clock: Monotonic seconds; injectable for tests.
            on_state: Called with (name, state) on every state change (e.g. to set a gauge).
        """
        if failure_threshold < 1 or reset_timeout_s <= 0:
            got = f"{failure_threshold}, {reset_timeout_s}"
            raise InvalidInputError(f"expected failure_threshold >= 1 and reset_timeout_s > 0, got {got}")
        self.name = name
        self._threshold = failure_threshold
        self._reset_s = reset_timeout_s
        self._clock = clock
        self._on_state = on_state
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False
        if on_state is not None:
            on_state(name, self._state)

    @property
    def state(self) -> BreakerState:
        """Return the state now (an open breaker past its timeout reads as half-open)."""
        with self._lock:
            if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._reset_s:
                return BreakerState.HALF_OPEN
            return self._state

    def before_call(self) -> None:
        """Admit a call or raise :class:`BreakerOpenError` at once."""
        with self._lock:
            if self._state is BreakerState.OPEN:
                if self._clock() - self._opened_at < self._reset_s:
                    raise BreakerOpenError(f"{self.name}: circuit open, failing fast")
                self._set(BreakerState.HALF_OPEN)
            if self._state is BreakerState.HALF_OPEN:
                if self._trial_running:
                    raise BreakerOpenError(f"{self.name}: circuit half-open, trial call in progress")
                self._trial_running = True

    def record_success(self) -> None:
        """Count a successful call: closes a half-open breaker."""
        with self._lock:
            self._failures = 0
            self._trial_running = False
            if self._state is not BreakerState.CLOSED:
                self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """Count a failed call: opens the breaker at the threshold or after a failed trial."""
        with self._lock:
            self._failures += 1
            self._trial_running = False
            if self._state is BreakerState.HALF_OPEN or self._failures >= self._threshold:
                self._opened_at = self._clock()
                self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        self._state = state
        if self._on_state is not None:
            self._on_state(self.name, state)
