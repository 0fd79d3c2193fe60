"""The request path's write-behind spool on SQLite: an answer's rows (its event's outbox row,
its ledger row, its kept input) are appended to a file before the caller is answered, and a
mover thread commits them to the store within LINGER_S (50 ms), many answers per commit.

Why: a SQLite commit writes every B-tree page it touched to the log; one answer's rows touch
ten, 0.17-0.2 ms of a lone request's latency (`bench_v2 --free-write`); an append, tens of µs.

Durability is SQLite's at synchronous=NORMAL, as abvoc opens it: an answered caller's commit is
in the page cache, surviving the process's crash, not the machine's; so is an append. After a crash,
whichever serving process on the store looks first (a restarted API worker or another one:
each looks at its start and every RECOVER_EVERY_S) commits what the dead one left, once: each
segment's committed offset is written in the same transaction as its rows (`spool_progress`).

Reads see the spool: before any unit of work this process opens on the store (any Database
object) the spool commits what it holds (core.store.db's read barrier); spool_others.settle
waits for every process's (a correction of an answer another API worker gave).

A commit that fails because the store is busy or gone is tried again with backoff, the rows safe
in the file; appends wait while MAX_PENDING_BYTES are uncommitted, then fail with a 503. A unit
the store refuses for itself (a constraint, a type) is set aside in `<owner>.rejected` with the
reason and logged, and the others go on. PostgreSQL takes no spool: its server's commit is
stronger than a local file, and a service on several machines has no one folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Sequence
from itertools import islice

from core.store.db import (
    Database,
    add_read_barrier,
    remove_read_barrier,
    sqlite_file,
    store_unreachable,
    write_lock_free,
)
from core.store.driver import DriverInsert
from core.store.groupcommit import GroupCommitter, Unit
from core.store.models import Base
from core.store.spool_file import (
    Entry,
    Groups,
    OwnerLock,
    SpoolUnavailable,
    append_private,
    encode,
    open_segment,
    remove_files,
    segment_name,
    segments,
    spool_folder,
    write_all,
)
from core.store.spool_others import recover_dead

log = logging.getLogger(__name__)

LINGER_S = 0.05  # at ~500 answers a second, about 25 answers a commit
MAX_BATCH = 512
MAX_PENDING_BYTES = 64 << 20
SEGMENT_BYTES = 16 << 20
RECOVER_EVERY_S = 5.0
BARRIER_TIMEOUT_S = 1.0  # a read waits this long for the spool (a commit takes ms), then
# reads what is there: the store is held by another writer, and the rows follow
ROOM_TIMEOUT_S = 30.0
_PROGRESS = ("INSERT INTO spool_progress (segment, applied) VALUES (?, ?) "
             "ON CONFLICT (segment) DO UPDATE SET applied = excluded.applied")
_FORGET = "DELETE FROM spool_progress WHERE segment = ?"


class Spool:
    """A drop-in for :class:`GroupCommitter` on the request path (`insert`, `insert_many`,
    `close`): the rows are durable as a commit at synchronous=NORMAL is when these return."""

    def __init__(self, db: Database, *, linger_s: float = LINGER_S,
                 max_pending_bytes: int = MAX_PENDING_BYTES,
                 segment_bytes: int = SEGMENT_BYTES) -> None:
        path = sqlite_file(db.url)
        if path is None:
            raise ValueError("a request spool needs a SQLite file")
        self.db = db
        self.path = path
        self.folder = spool_folder(path)
        self.folder.mkdir(mode=0o700, exist_ok=True)
        self.linger_s = linger_s
        self.max_pending_bytes = max_pending_bytes
        self.segment_bytes = segment_bytes
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.rejected = 0  # units the store refused, set aside
        self._tables = Base.metadata.tables
        self._committer = GroupCommitter(db)
        self._lock = OwnerLock.create(self.folder, self.owner)
        self._append = threading.Lock()  # one appender at a time: the file's order is the queue's
        self._cond = threading.Condition()
        self._pending: deque[Entry] = deque()
        self._pending_bytes = 0
        self._appended = 0
        self._applied = 0
        self._urgent = False
        self._idle = False
        self._trying_since: float | None = None  # when the mover began trying its batch
        self._locked, self._failed = False, 0  # the mover has the write lock; commits failed
        self._stopping = False
        self._accepting = True
        self._seq = 0
        self._size = 0
        self._done: dict[str, int] = {}  # own rotated segments: their final size
        self._ends: dict[str, int] = {}  # own segments: the offset committed up to
        self._forget: list[str] = []  # own segments removed: their progress rows to delete
        self._torn = False  # a failed append left bytes past _size the file could not lose
        self._fd = open_segment(self.folder, self.owner, self._seq)
        self._thread = threading.Thread(target=self._run, name=f"spool:{self.owner}",
                                        daemon=True)
        self._thread.start()
        add_read_barrier(path, self._before_read)

    # --- the callers' side ------------------------------------------------------------

    def insert(self, rows: Unit) -> None:
        error = self.insert_many([rows])[0]
        if error is not None:
            raise error

    def insert_many(self, units: Sequence[Unit]) -> list[Exception | None]:
        """Append the units (each all or none) and return once they are in the file."""
        entries: list[Entry] = []
        blobs: list[bytes] = []
        for unit in units:
            groups: Groups = []
            for table, row in unit.items():
                columns = tuple(row)
                statement = self._committer.statement(table, columns)
                groups.append((table.name, columns, statement.params(row)))
            blob = encode(groups)
            blobs.append(blob)
            entries.append(Entry("", 0, groups, len(blob)))
        size = sum(len(b) for b in blobs)
        try:
            with self._append:
                self._room(size)
                if self._size >= self.segment_bytes:
                    self._rotate()
                self._write(b"".join(blobs))
                end, segment = self._size - size, segment_name(self.owner, self._seq)
                now = time.monotonic()
                for entry in entries:
                    end += entry.size
                    entry.segment, entry.end, entry.at = segment, end, now
                with self._cond:
                    self._pending.extend(entries)
                    self._pending_bytes += size
                    self._appended += len(entries)
                    # A busy mover takes these at the end of its linger: waking it for each
                    # append cost a thread switch each (tens of µs of CPU on a VM).
                    if self._idle or len(self._pending) >= MAX_BATCH:
                        self._cond.notify_all()
        except (OSError, SpoolUnavailable) as exc:
            error = exc if isinstance(exc, SpoolUnavailable) else SpoolUnavailable(
                f"the request spool in {self.folder} cannot be written ({exc.strerror or exc}); "
                "free space on its disk or make the folder writable")
            return [error] * len(units)
        return [None] * len(units)

    def _room(self, size: int) -> None:
        if not self._accepting:
            raise SpoolUnavailable("the service is stopping; send the request again")
        with self._cond:
            if self._pending_bytes + size <= self.max_pending_bytes or not self._pending:
                return
            self._urgent = True
            self._cond.notify_all()
            if not self._cond.wait_for(
                    lambda: self._pending_bytes + size <= self.max_pending_bytes,
                    timeout=ROOM_TIMEOUT_S):
                raise SpoolUnavailable(
                    f"the store has not taken the last {self._pending_bytes >> 20} MiB of "
                    "answers for some time (is it locked or its disk full?); try again later")

    def _write(self, data: bytes) -> None:
        if self._torn:
            self._rotate()  # raises, changing nothing, while no new segment can be made
        try:
            write_all(self._fd, data)
        except OSError:
            # Nothing half-written may stay: a torn record would end the file's reading there.
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                self._torn = True  # its end is unknown now: the next append starts a new one
            raise
        self._size += len(data)

    def flush(self, timeout: float = BARRIER_TIMEOUT_S) -> bool:
        """Wait until what was appended so far is committed; False after `timeout`."""
        if threading.current_thread() is self._thread:
            return True
        with self._cond:
            target = self._appended
            if self._applied >= target:
                return True
            self._urgent = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._applied >= target, timeout=timeout)

    def _before_read(self) -> None:
        """The read barrier: wait for the spool up to BARRIER_TIMEOUT_S from when the mover's try
        began; past that (another writer holds the store) reads go on at once, until the lock is
        free or the mover's and its commits are not failing (a /readyz makes four reads)."""
        since = self._trying_since
        waited = 0.0 if since is None else time.monotonic() - since
        if waited < BARRIER_TIMEOUT_S:
            self.flush(BARRIER_TIMEOUT_S - waited)
        elif not self._failed and (self._locked or write_lock_free(self.db.engine)
                                   or self._mover_locked()):
            self.flush(BARRIER_TIMEOUT_S)

    def _mover_locked(self) -> bool:
        time.sleep(0.001)  # a mover that took the lock just before the probe: let it say so
        return self._locked

    def pending(self) -> tuple[int, float]:
        """Units appended and not yet committed, and how long the oldest has waited (s)."""
        with self._cond:
            oldest = self._pending[0].at if self._pending else time.monotonic()
            return len(self._pending), time.monotonic() - oldest

    def close(self) -> None:
        """Commit what is held, stop the mover and remove the spool's files; rows the store
        would not take in time stay in the file for the next process."""
        with self._append:
            if not self._accepting:
                return  # closed already
            self._accepting = False
        remove_read_barrier(self.path, self._before_read)
        flushed = self.flush(ROOM_TIMEOUT_S)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=ROOM_TIMEOUT_S)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        if flushed and not self._pending:
            names = [p.name for p in segments(self.folder, self.owner)]
            # The files first: a segment whose progress row went first would be read again.
            remove_files([self.folder / n for n in names])
            try:
                self._forget_now(names + self._forget)
            except Exception:  # a few stale rows, naming files that are gone
                log.warning("the spool's progress rows stay in the store", exc_info=True)
            self._lock.release(remove=True)
        else:
            log.warning("%d answers stay in the request spool %s; the next process on the "
                        "store commits them", len(self._pending), self.folder)
            self._lock.release(remove=False)
        self._committer.close()

    # --- the mover ----------------------------------------------------------------------

    def _run(self) -> None:
        next_look = 0.0
        while True:
            try:
                if time.monotonic() >= next_look and not self._stopping:
                    next_look = time.monotonic() + RECOVER_EVERY_S
                    self._recover_orphans()
                with self._cond:
                    if not self._pending and not self._stopping:
                        self._idle = True  # the next append wakes it; none after, while busy
                        self._cond.wait(timeout=max(next_look - time.monotonic(), 0.001))
                        self._idle = False
                    if self._pending and not (self._urgent or self._stopping) \
                            and len(self._pending) < MAX_BATCH:
                        self._cond.wait(timeout=self.linger_s)  # others' rows join the commit
                    batch = list(islice(self._pending, MAX_BATCH))
                    if not batch and self._stopping:
                        return
                if batch and not self._apply(batch):
                    if self._stopping:
                        return
                    self._failed += 1
                    time.sleep(min(0.01 * 2 ** min(self._failed, 7), 1.0))
                elif batch:
                    self._failed = 0
            except Exception:  # the mover must outlive any one failure
                log.exception("the request spool's mover failed; going on")
                time.sleep(0.1)

    def _apply(self, batch: list[Entry]) -> bool:
        """Commit the batch (own or a dead owner's); False when the store is busy or gone."""
        if self._trying_since is None:
            self._trying_since = time.monotonic()
        try:
            self._commit(batch)
        except Exception as exc:
            if store_unreachable(exc):
                log.warning("the request spool's commit failed (%s); trying again", exc)
                return False
            if len(batch) > 1:  # find the unit the store refuses; commit the others
                return all(self._apply([entry]) for entry in batch)
            try:
                self._reject(batch[0], exc)
            except Exception:
                log.warning("setting a refused unit aside failed; trying again", exc_info=True)
                return False
        self._trying_since = None
        self._applied_some(batch)
        return True

    def _commit(self, batch: list[Entry], *, skip: bool = False) -> None:
        groups: dict[DriverInsert, list] = {}
        if not skip:
            for entry in batch:
                for name, columns, params in entry.groups:
                    statement = self._committer.statement(self._tables[name], columns)
                    groups.setdefault(statement, []).append(params)
        ends = {entry.segment: entry.end for entry in batch}
        forget, self._forget = self._forget, []

        def progress(cursor: object) -> None:
            cursor.executemany(_PROGRESS, list(ends.items()))  # type: ignore[attr-defined]
            if forget:
                cursor.executemany(_FORGET, [(n,) for n in forget])  # type: ignore[attr-defined]

        try:
            self._committer.write_params(groups, progress,
                                         began=lambda: setattr(self, "_locked", True))
        except BaseException:
            self._forget.extend(forget)
            raise
        finally:
            self._locked = False

    def _reject(self, entry: Entry, exc: Exception) -> None:
        """Set a unit the store refuses aside, with the reason, and count it committed."""
        self.rejected += 1
        kept = self.folder / f"{self.owner}.rejected"
        log.error("the store refused an answer's rows from the spool; kept in %s: %s", kept, exc)
        append_private(kept, encode([("error", (), str(exc)[:2000]), *entry.groups]))
        self._commit([entry], skip=True)

    def _applied_some(self, batch: list[Entry]) -> None:
        own = batch[0].segment.startswith(f"{self.owner}.")
        if not own:
            return
        with self._cond:
            for _ in batch:
                self._pending_bytes -= self._pending.popleft().size
            self._applied += len(batch)
            if not self._pending:
                self._urgent = False
            self._cond.notify_all()
            for entry in batch:
                self._ends[entry.segment] = entry.end
            # Rotated segments all committed (`_done` changes under this lock, in _rotate).
            finished = [n for n, final in self._done.items() if self._ends.get(n, -1) >= final]
            for name in finished:
                del self._ends[name], self._done[name]
        remove_files([self.folder / name for name in finished])
        self._forget.extend(finished)

    def _rotate(self) -> None:
        """Go on in a new segment; the old one is removed once its last record is committed.
        The new one is opened first: where it cannot be, nothing changes (the OSError is the
        caller's 503); closing the old one first left a closed number that later appends
        wrote through once the process reused it (into an HTTP answer, over the store's file)."""
        fd = open_segment(self.folder, self.owner, self._seq + 1)
        with self._cond:
            if self._size:
                self._done[segment_name(self.owner, self._seq)] = self._size
        old, self._fd = self._fd, fd
        self._seq += 1
        self._size = 0
        self._torn = False
        with contextlib.suppress(OSError):
            os.close(old)

    def _recover_orphans(self) -> None:
        recover_dead(self.folder, self.owner, self.path, self._apply, self._forget_now)

    def _forget_now(self, names: list[str]) -> None:
        self._committer.write_params({}, lambda c: c.executemany(_FORGET, [(n,) for n in names]))

