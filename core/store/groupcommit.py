"""Group commit: small write units from many request threads share one transaction.

A request thread hands its unit (a function of a Session) to `run` and blocks until the unit is
committed, so the caller still answers only after its writes are durable. One writer thread
takes every unit queued meanwhile and commits them together: one commit per batch instead of one
per request, and no lock contention between the process's threads (SQLite has one writer at a
time). If a unit fails, the batch is rolled back and its units run again one by one, so only the
failing unit's caller gets the error and its batch-mates are still committed.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from core.store.db import Database

Unit = Callable[[Session], Any]


class _Pending:
    __slots__ = ("unit", "done", "result", "error")

    def __init__(self, unit: Unit) -> None:
        self.unit = unit
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommitter:
    def __init__(self, db: Database, *, max_batch: int = 256) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="group-commit", daemon=True)
        self._thread.start()

    def run(self, unit: Unit) -> Any:
        """Run `unit` in a shared transaction; return its result once committed."""
        pending = _Pending(unit)
        with self._cond:
            if self._closed:
                raise RuntimeError("the group committer is closed")
            self._queue.append(pending)
            self._cond.notify()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = [self._queue.popleft()
                         for _ in range(min(self.max_batch, len(self._queue)))]
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            with self.db.session() as s:
                results = [p.unit(s) for p in batch]
        except Exception as exc:
            if len(batch) > 1:
                for pending in batch:
                    self._commit([pending])
                return
            batch[0].error = exc
            batch[0].done.set()
            return
        for pending, result in zip(batch, results, strict=True):
            pending.result = result
            pending.done.set()

    def close(self) -> None:
        """Commit what is queued, then stop the writer."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)

