"""Group commit: rows from many threads share one transaction and one INSERT per table.

A thread hands its rows (table → its row) to `insert`, or a candidate's batcher the rows of its
batch's answers to `insert_many`, and blocks until they are committed, so the caller still
answers only after its writes are durable. The threads take turns as the leader
(leader/follower, as in database group commit): a thread that finds no commit in progress writes
everything queued so far, its own rows included, with one INSERT per table (on SQLite, one
multi-row statement per chunk: driver.values_chunks) and one commit; the threads that queued
rows meanwhile wait, each on a lock of its own, and the leader wakes the ones it committed and
hands the lead to the first still waiting, which writes the next batch. A lone request writes on
its own thread with no hand-off to another, and concurrent ones share commits; one writer at a
time also means no lock contention between the process's threads (SQLite has one writer at a
time). If a batch fails, its units are written again one by one, so only the failing unit's
caller gets the error and its batch-mates are still committed.

The leaders share one held DBAPI connection and one prebuilt INSERT per table, and write through
the driver's cursor: on this hot path the pool check-out, its reset on return, building the
statement and SQLAlchemy's execution layers cost as much as the write itself. On SQLite the
held connection keeps its busy timeout off (begin_write's `held` mode), so a write begins with
one statement rather than three. A connection that fails is dropped, and the next batch checks
out a fresh one.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

from core.store.db import Database, begin_write, hold_for_writes
from core.store.driver import DriverInsert, values_chunks, variable_limit

Unit = Mapping[Table, Mapping[str, Any]]
"""One caller's rows, stored all or none: at most one row per table."""


class _Pending:
    """One caller's units; `turn` is held until they are committed (done) or the caller is
    handed the lead, so a waiter is woken exactly once, by the thread that has news for it."""

    __slots__ = ("units", "done", "errors", "turn")

    def __init__(self, units: Sequence[Unit]) -> None:
        self.units = units
        self.done = False
        self.errors: list[Exception | None] = [None] * len(units)
        self.turn = threading.Lock()
        self.turn.acquire()


class GroupCommitter:
    def __init__(self, db: Database, *, max_batch: int = 256, linger_s: float = 0.001) -> None:
        self.db = db
        self.max_batch = max_batch
        self.linger_s = linger_s
        self._busy = False
        self._queue: deque[_Pending] = deque()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._leading = False
        self._closed = False
        self._conn: PoolProxiedConnection | None = None
        # SQLite's driver runs in autocommit mode: a raw write must open its transaction.
        self._sqlite = db.dialect == "sqlite"
        self._statements: dict[tuple[Table, tuple[str, ...]], DriverInsert] = {}

    def insert(self, rows: Unit) -> None:
        """Insert `rows` (one row per table; all or none) in a shared transaction; return once
        committed."""
        error = self.insert_many([rows])[0]
        if error is not None:
            raise error

    def insert_many(self, units: Sequence[Unit]) -> list[Exception | None]:
        """Insert several units (each all or none) in a shared transaction, for a caller that
        writes for several requests at once (a candidate's batch); returns once committed, with
        each unit's error or None."""
        pending = _Pending(units)
        with self._lock:
            if self._closed:
                raise RuntimeError("the group committer is closed")
            self._queue.append(pending)
            follow, self._leading = self._leading, True
        if follow:
            pending.turn.acquire()  # committed by a leader, or handed the lead
        if not pending.done:
            self._lead()
        return pending.errors

    def _lead(self) -> None:
        """Commit the queue's head (the leader's own rows first), wake its callers and hand the
        lead to the first caller still waiting, if any (else no one leads until the next)."""
        if self._busy and self.linger_s:
            # Others wrote alongside the last commit: wait a moment for the rest of them, so
            # one commit serves several (a lone client never waits here).
            time.sleep(self.linger_s)
        with self._lock:
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
        try:
            self._commit(batch)
        except BaseException:  # interrupted: no caller may take its rows for committed
            for done in batch:
                done.errors[:] = [e or RuntimeError("the commit was interrupted")
                                  for e in done.errors]
            raise
        finally:
            for done in batch:
                done.done = True
            with self._lock:
                self._busy = len(batch) > 1 or bool(self._queue)
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._leading = False
                    self._idle.notify_all()
            for done in batch[1:]:  # batch[0] is the leader's own
                done.turn.release()
            if successor is not None:
                successor.turn.release()

    def _commit(self, batch: list[_Pending]) -> None:
        """Write every unit of the batch in one transaction; if that fails, each unit again on
        its own, so only the failing unit's caller gets the error."""
        self._commit_units([(pending, i) for pending in batch for i in range(len(pending.units))])

    def _commit_units(self, units: list[tuple[_Pending, int]]) -> None:
        try:
            self._write([pending.units[i] for pending, i in units])
        except Exception as exc:
            if len(units) == 1:
                pending, i = units[0]
                pending.errors[i] = exc
            else:
                for one in units:
                    self._commit_units([one])

    def _write(self, units: list[Unit]) -> None:
        """The units' rows in one transaction, one INSERT per table and column set."""
        groups: dict[DriverInsert, list] = {}
        for unit in units:
            for table, row in unit.items():
                statement = self.statement(table, tuple(row))
                groups.setdefault(statement, []).append(statement.params(row))
        self.write_params(groups)

    def write_params(self, groups: Mapping[DriverInsert, Sequence[Any]],
                     after: Callable[[Any], None] | None = None,
                     began: Callable[[], None] | None = None) -> None:
        """Each statement's rows (driver parameters), then `after(cursor)`, in one transaction
        on the held DBAPI connection, all or none; once more on a fresh connection when the held
        one turns out to be gone (the server restarted since the last commit). Driver errors are
        raised as SQLAlchemy's, as the rest of the service sees them. `began()` is called once
        SQLite's write lock is taken."""
        dialect = self.db.engine.dialect
        for attempt in range(2):
            conn = cursor = None
            try:
                conn = self._connection()
                cursor = conn.cursor()
                if self._sqlite:
                    begin_write(cursor, held=True)
                    if began is not None:
                        began()
                limit = variable_limit(conn) if self._sqlite else 0
                for statement, params in groups.items():
                    if self._sqlite:
                        values_chunks(cursor, statement, params, limit)
                    else:
                        cursor.executemany(statement.sql, params)
                if after is not None:
                    after(cursor)
                conn.commit()
                return
            except dialect.loaded_dbapi.Error as exc:  # a connect that failed leaves conn None
                gone = conn is None or self._rolled_back(conn, exc, cursor)
                if gone and attempt == 0:
                    continue
                raise DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error,
                                          connection_invalidated=gone, dialect=dialect) from exc
            except Exception:
                self._drop_connection()
                raise
            finally:
                if cursor is not None:
                    with contextlib.suppress(Exception):
                        cursor.close()

    def _rolled_back(self, conn: PoolProxiedConnection, exc: Exception, cursor: Any) -> bool:
        """Roll back after a driver error; whether the connection is gone (then dropped)."""
        gone = self.db.engine.dialect.is_disconnect(exc, conn, cursor)
        if not gone:
            try:
                conn.rollback()
            except Exception:  # a connection that cannot roll back is no use either
                gone = True
        if gone:
            self._drop_connection()
        return gone

    def _connection(self) -> PoolProxiedConnection:
        if self._conn is None or not self._conn.is_valid:
            conn = self.db.engine.raw_connection()
            if self._sqlite:
                hold_for_writes(conn, True)
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # A broken connection may fail to say so too; it is gone either way.
            with contextlib.suppress(Exception):
                conn.invalidate()

    def statement(self, table: Table, columns: tuple[str, ...]) -> DriverInsert:
        """The INSERT of these columns of the table, compiled once."""
        key = (table, columns)
        statement = self._statements.get(key)
        if statement is None:
            statement = self._statements[key] = DriverInsert.compile(
                table.insert(), table, self.db.engine.dialect, columns)
        return statement

    def close(self) -> None:
        """Refuse new rows, wait until the rows already queued are committed, and return the
        connection."""
        with self._lock:
            self._closed = True
            while self._leading or self._queue:
                self._idle.wait()
            conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self._sqlite:
                hold_for_writes(conn, False)  # back to the pool as the others are
        except Exception:  # one that cannot take it back is no use to the pool either
            conn.invalidate()
        else:
            conn.close()

