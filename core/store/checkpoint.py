"""SQLite's WAL checkpoints, off the writers' path.

In WAL mode SQLite copies the log back into the database file (a checkpoint) in whichever
connection commits past 1000 log pages: that request, or that worker batch, then pays for
copying every page and two fsyncs (up to tens of milliseconds) while the others go on. abvoc's
connections turn that off (``PRAGMA wal_autocheckpoint=0``, see core.store.db) and every process
that uses the store runs a :class:`Checkpointer` from its first connection: a thread with its
own connection that checkpoints every `every_s` in PASSIVE mode, which never waits for, nor
blocks, a reader or a writer. With several processes on one file, whichever comes first does the
work and the others find little left. When the last connection to the file closes, SQLite
checkpoints once more and removes the log, as it always does.

A log copied back starts over only when a write begins while no reader still reads from it;
under steady traffic some reader always does (the worker, a page, the router's refresh), so
the log file grew with every page ever written (1.6 GB in 18 minutes of a soak). Once it holds
more than WAL_LIMIT_BYTES, the checkpoint is a TRUNCATE: it takes the write lock, waits (up to
its connection's 1 s busy timeout) for the readers of the log to finish, copies the rest back
and cuts the file to nothing. Writers wait for it as for any writer (a spooled answer is
already durable; the spool's mover commits it after); readers never wait.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time

log = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 1.0
WAL_LIMIT_BYTES = 64 << 20
CUT_RETRY_S = 30.0


class Checkpointer:
    """A daemon thread that checkpoints one SQLite file's log every `every_s`."""

    def __init__(self, path: str, every_s: float = CHECKPOINT_EVERY_S,
                 wal_limit_bytes: int = WAL_LIMIT_BYTES) -> None:
        self.path = path
        self.every_s = every_s
        self.wal_limit_bytes = wal_limit_bytes
        self.backfilled = 0  # log pages copied into the database file so far
        self.truncated = 0  # times the log was cut back to nothing
        self._cut_after = 0.0  # a cut that found a reader holding on is tried again after this
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"checkpoint:{path}",
                                        daemon=True)

    def start(self) -> Checkpointer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        cut = self._wal_bytes() > self.wal_limit_bytes and time.monotonic() >= self._cut_after
        mode = "TRUNCATE" if cut else "PASSIVE"
        busy, _log_pages, copied = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        self.backfilled += max(copied, 0)
        if cut and not busy:
            self.truncated += 1
        elif cut:  # a reader held the log past the busy timeout: writers are not held again
            # every second for it, only every CUT_RETRY_S
            self._cut_after = time.monotonic() + CUT_RETRY_S
            size = self._wal_bytes()
            # Under steady traffic a try often meets a reader and the next one (here or in
            # another process) cuts: a soak logged 58 such warnings in 16 minutes with the log
            # never past 82 MiB. A log past twice the limit means the cuts keep failing.
            level = logging.WARNING if size > 2 * self.wal_limit_bytes else logging.DEBUG
            log.log(level, "the SQLite log of %s is %d MiB and a reader has held it for over "
                    "a second; cutting it back again in %.0f s", self.path, size >> 20,
                    CUT_RETRY_S)

    def _wal_bytes(self) -> int:
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:  # none yet, or removed by the last connection's close
            return 0

    def _run(self) -> None:
        conn = None
        while not self._stop.wait(self.every_s):
            try:
                if conn is None:
                    conn = sqlite3.connect(self.path, timeout=1, isolation_level=None,
                                           check_same_thread=False)
                self.checkpoint(conn)
            except sqlite3.Error as exc:  # the next turn tries again, with a new connection
                log.debug("checkpoint of %s failed: %s", self.path, exc)
                if conn is not None:
                    conn.close()
                    conn = None
        if conn is not None:
            conn.close()
