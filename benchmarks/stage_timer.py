"""Time a running server spends inside chosen methods, summed by name: the benchmarks'
breakdowns of where a request's time goes.

`StageTimer(time.thread_time)` sums each calling thread's CPU time (bench_api: what the serving
path costs the server); `StageTimer()` sums wall-clock time (bench_v2: what a request waits for,
the remote server's answer included). A wrapper costs a clock call on each side, a few µs of
CPU with `thread_time` and well under one with the wall clock: quote headline figures from runs
without a breakdown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class StageTimer:
    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self._seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def wrap(self, owner: object, method: str, name: str) -> None:
        """Replace `owner.method` (a class's method or a module's function) by a timed call."""
        inner = getattr(owner, method)
        clock = self.clock

        def timed(*args: object, **kwargs: object) -> object:
            start = clock()
            try:
                return inner(*args, **kwargs)
            finally:
                spent = clock() - start
                with self._lock:
                    self._seconds[name] = self._seconds.get(name, 0.0) + spent

        setattr(owner, method, timed)

    def totals(self) -> dict[str, float]:
        """Seconds spent so far in each named method (a copy)."""
        with self._lock:
            return dict(self._seconds)


def per_request(before: dict[str, float], after: dict[str, float],
                requests: int) -> dict[str, float]:
    """Milliseconds per request in each stage between two `totals()` snapshots."""
    return {k: (v - before.get(k, 0.0)) * 1000 / requests for k, v in after.items()}
