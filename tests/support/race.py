"""Running calls at the same instant, each on its own store connection pool, as separate
processes would: the concurrency tests' harness."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from core.store.db import Database
from tests.support.flow import joined


@contextmanager
def databases(url: str, n: int) -> Iterator[list[Database]]:
    """`n` stores on one URL, each with its own engine (its own connections), each connected
    once already so that no call starts late for opening a connection."""
    dbs = [Database(url) for _ in range(n)]
    for db in dbs:
        db.check()
    try:
        yield dbs
    finally:
        for db in dbs:
            db.dispose()


def race(dbs: Sequence[Database], calls: Sequence[Callable[[Database], Any]]) -> list[Any]:
    """Run calls[i] on dbs[i], all released by one barrier; each one's result, or the
    exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i](dbs[i])
        except Exception as exc:  # noqa: BLE001 - the test inspects what each got
            results[i] = exc

    # Daemons: a call stuck past the join's bound fails its test, never the process's exit.
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    joined(threads, 60)
    return results
