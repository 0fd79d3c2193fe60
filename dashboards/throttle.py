"""A small in-process limit on failed dashboard logins, per client address.

Keys are 32 random bytes, so guessing one is hopeless anyway: this is defence in depth, and it
keeps a script from hammering the key look-up. After :data:`FAILURES` failed logins from one
address within :data:`WINDOW_S` seconds, that address's logins get a 429 with ``Retry-After``
for :data:`BLOCK_S` seconds. Each worker process counts on its own, and the address is the one
the server sees (a proxy in front makes its clients share one).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

FAILURES = 10
WINDOW_S = 60.0
BLOCK_S = 60.0
_MAX_ADDRESSES = 10_000


class Throttle:
    """Failed-login counts per address, and the addresses blocked until when."""

    def __init__(self, failures: int = FAILURES, window_s: float = WINDOW_S,
                 block_s: float = BLOCK_S) -> None:
        self.failures = failures
        self.window_s = window_s
        self.block_s = block_s
        self._failed: dict[str, deque[float]] = {}
        self._blocked: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, address: str) -> int:
        """Seconds ``address`` must wait before its next login (0: it may log in now)."""
        with self._lock:
            until = self._blocked.get(address)
            if until is None:
                return 0
            left = until - time.monotonic()
            if left <= 0:
                del self._blocked[address]
                return 0
            return math.ceil(left)

    def failed(self, address: str) -> None:
        """Count a failed login; block the address once it has too many in the window."""
        now = time.monotonic()
        with self._lock:
            if len(self._failed) >= _MAX_ADDRESSES or len(self._blocked) >= _MAX_ADDRESSES:
                self._forget_stale(now)
            times = self._failed.setdefault(address, deque())
            times.append(now)
            while times and now - times[0] > self.window_s:
                times.popleft()
            if len(times) >= self.failures:
                self._blocked[address] = now + self.block_s
                del self._failed[address]

    def succeeded(self, address: str) -> None:
        """A good key resets the address's count (a few typos are not held against it)."""
        with self._lock:
            self._failed.pop(address, None)

    def _forget_stale(self, now: float) -> None:
        """Bound the memory a flood of addresses can take: expired blocks went only when their
        own address came back, so addresses enough (an IPv6 /64 holds plenty) grew it for
        good."""
        for address in [a for a, t in self._failed.items() if now - t[-1] > self.window_s]:
            del self._failed[address]
        for address in [a for a, until in self._blocked.items() if until <= now]:
            del self._blocked[address]
        if len(self._failed) >= _MAX_ADDRESSES:
            self._failed.clear()
        if len(self._blocked) >= _MAX_ADDRESSES:  # many addresses blocked within BLOCK_S:
            # keep the later half, dropping the blocks nearest their end
            by_end = sorted(self._blocked.items(), key=lambda item: item[1])
            self._blocked = dict(by_end[len(by_end) // 2:])
