"""Group commit: rows from many request threads share one transaction and one INSERT per table.

A request thread hands its rows (table → row dicts) to `insert` and blocks until they are
committed, so the caller still answers only after its writes are durable. One writer thread
takes everything queued meanwhile and writes it with one executemany per table: one commit per
batch instead of one per request, and no lock contention between the process's threads (SQLite
has one writer at a time). If the batch fails, its units are written again one by one, so only
the failing unit's caller gets the error and its batch-mates are still committed.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table

from core.store.db import Database

Rows = Mapping[Table, Sequence[Mapping[str, Any]]]


class _Pending:
    __slots__ = ("rows", "done", "error")

    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        self.done = threading.Event()
        self.error: Exception | None = None


class GroupCommitter:
    def __init__(self, db: Database, *, max_batch: int = 256, linger_s: float = 0.001) -> None:
        self.db = db
        self.max_batch = max_batch
        self.linger_s = linger_s
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="group-commit", daemon=True)
        self._thread.start()

    def insert(self, rows: Rows) -> None:
        """Insert `rows` (all or none) in a shared transaction; return once committed."""
        pending = _Pending(rows)
        with self._cond:
            if self._closed:
                raise RuntimeError("the group committer is closed")
            self._queue.append(pending)
            self._cond.notify()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error

    def _loop(self) -> None:
        last = 1
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                if last > 1 and len(self._queue) < last and not self._closed:
                    # Requests are arriving concurrently: wait a moment for the rest of them,
                    # so one commit serves several (a lone client never waits here).
                    self._cond.wait(self.linger_s)
                batch = [self._queue.popleft()
                         for _ in range(min(self.max_batch, len(self._queue)))]
            last = len(batch)
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        merged: dict[Table, list[Mapping[str, Any]]] = {}
        for pending in batch:
            for table, rows in pending.rows.items():
                merged.setdefault(table, []).extend(rows)
        try:
            # A Core connection: no ORM session is needed to insert plain rows, and it is
            # several times cheaper per batch on this hot path.
            with self.db.engine.begin() as conn:
                for table, rows in merged.items():
                    conn.execute(table.insert(), rows)
        except Exception as exc:
            if len(batch) > 1:
                for pending in batch:
                    self._commit([pending])
                return
            batch[0].error = exc
        for pending in batch:
            pending.done.set()

    def close(self) -> None:
        """Commit what is queued, then stop the writer."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)
