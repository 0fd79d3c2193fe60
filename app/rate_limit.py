"""A per-API-key request rate limit (ABVOC_RATE_LIMIT requests per second; 0: none).

Each key has a token bucket holding up to two seconds' worth of requests, so a client may burst
briefly and then keeps to the rate; a request past it gets a 429 whose ``Retry-After`` says
when the next one will be taken. The limit protects the store and the candidates from one
runaway client (a retry loop, a load test pointed at production) without slowing the others.

Each serving process keeps its own buckets, like the dashboard's login throttle: with
``--workers N`` a key that spreads its connections over the workers may reach up to N times the
rate. Only requests with a valid key are counted, so the buckets are bounded by the keys.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from core.errors import AbvocError

BURST_S = 2.0
"""A bucket holds this many seconds' worth of requests (at least one request)."""


class RateLimited(AbvocError):
    status = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.headers = (("Retry-After", str(max(1, math.ceil(retry_after_s)))),)


class KeyRateLimit:
    """Token buckets by key identity, refilled at `per_second`."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.capacity = max(1.0, BURST_S * per_second)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when counted)
        self._lock = threading.Lock()

    def wait_s(self, key: str) -> float:
        """Take one request from `key`'s bucket: 0 when it may go now, else the seconds until
        the bucket holds one (nothing is taken then)."""
        now = self.clock()
        with self._lock:
            tokens, then = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - then) * self.per_second)
            if tokens >= 1.0 - 1e-9:  # a whole request, up to rounding
                self._buckets[key] = (max(tokens - 1.0, 0.0), now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.per_second

    def check(self, key: str, shown: str) -> None:
        """Raise RateLimited when `key` (named `shown` in the message) is over the rate."""
        wait = self.wait_s(key)
        if wait > 0:
            raise RateLimited(f"API key {shown} sent more than {self.per_second:g} requests a "
                              f"second (ABVOC_RATE_LIMIT); retry in {wait:.2f} s", wait)
