"""Load limits: a token bucket per caller, and a cap on requests in flight."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cvops.errors import InvalidInputError


class TokenBucket:
    """``rate_per_s`` tokens a second, up to ``burst`` saved; one token per request."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        """Start full."""
        if rate_per_s <= 0 or burst < 1:
            raise InvalidInputError(f"expected rate_per_s > 0 and burst >= 1, got {rate_per_s}, {burst}")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def try_take(self) -> float:
        """Take a token; return 0.0 on success, else the seconds until one is available."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


class RateLimiter:
    """One token bucket per caller id; thread-safe."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        """Configure the buckets every caller gets."""
        TokenBucket(rate_per_s, burst, clock)  # validate once, here
        self._rate = rate_per_s
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def retry_after_s(self, caller: str) -> float:
        """Take a token for ``caller``; return 0.0 if allowed, else seconds to wait."""
        with self._lock:
            bucket = self._buckets.get(caller)
            if bucket is None:
                bucket = self._buckets[caller] = TokenBucket(self._rate, self._burst, self._clock)
            return bucket.try_take()


class InFlightLimit:
    """At most ``limit`` requests at once; the rest are shed, not queued."""

    def __init__(self, limit: int) -> None:
        """Allow ``limit`` concurrent requests."""
        if limit < 1:
            raise InvalidInputError(f"limit: expected >= 1, got {limit}")
        self._limit = limit
        self._count = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Return the requests being served now."""
        return self._count

    def try_enter(self) -> bool:
        """Count one more request in flight, unless the limit is reached."""
        with self._lock:
            if self._count >= self._limit:
                return False
            self._count += 1
            return True

    def leave(self) -> None:
        """Count one request as finished."""
        with self._lock:
            self._count -= 1
