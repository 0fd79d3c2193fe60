"""Routing changes told to every serving process on the store within milliseconds of the commit.

Each API process keeps the active experiments in memory (serving.router); a kill, a pause, a
resume, a stop, a canary step or an arm's pause changes where traffic goes, and waiting for the
next periodic reload (a second) let the other processes serve the old split meanwhile. So each
such unit of work says so (`mark_changed`), and every router looks for the mark on each route
call without a query to the store:

- SQLite: a stamp file beside the store (`<store>-routes`; the store is one machine's file), one
  byte appended right after the commit; a router compares its size, inode and time (one stat).
- PostgreSQL: a NOTIFY in the transaction (sent at its commit, never for a rollback); each router
  keeps one LISTEN connection and reads what has arrived on it (no round trip), reconnecting with
  backoff in a thread. A connection that was down counts as a change: notices may have been lost.

The periodic reload stays as the safety net.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from pathlib import Path

import psycopg
from sqlalchemy import make_url, text
from sqlalchemy.orm import Session

from core.store.db import Database, sqlite_file

log = logging.getLogger(__name__)

CHANNEL = "abvoc_routes"
_MARK = "abvoc_routes_changed"
ROLL_BYTES = 4096  # the stamp starts anew (a new file, so a new inode) past this size
NOTICE_WAIT_S = 0.25  # how long a change waits for its own notice to come back (PostgreSQL)
NOTICE_GRACE_S = 0.005  # and then for the other listeners' servers to send theirs (measured on
# two busy cores: 3 % came after this process's own, within 5 ms)
BACKOFF_S = (0.5, 10.0)


def stamp_path(sqlite_path: str) -> Path:
    """The stamp file of a SQLite store, beside it (as the request spool's folder is)."""
    return Path(sqlite_path + "-routes")


def mark_changed(s: Session) -> None:
    """Say that this unit of work changes how traffic routes; on PostgreSQL the notice joins
    its transaction."""
    if s.info.get(_MARK):
        return
    s.info[_MARK] = True
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


def changed_in(s: Session) -> bool:
    return bool(s.info.get(_MARK))


def announce(db: Database) -> None:
    """After the commit of a marked unit of work: bump a SQLite store's stamp. A stamp that
    cannot be written is logged, not raised: the change is stored, and the routers reload within
    their refresh period anyway."""
    path = sqlite_file(db.url)
    if path is None:
        return
    stamp = stamp_path(path)
    try:
        if stamp.exists() and stamp.stat().st_size >= ROLL_BYTES:
            fresh = stamp.with_name(f"{stamp.name}.{os.getpid()}.new")
            _append(fresh)
            os.replace(fresh, stamp)
        else:
            _append(stamp)
    except OSError as exc:
        log.warning("routing change stored, but its stamp %s cannot be written (%s): other "
                    "processes follow it at their next periodic reload", stamp, exc)


def _append(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)


class StampWatch:
    """A SQLite store's stamp, looked at on each route call (one stat)."""

    def __init__(self, sqlite_path: str) -> None:
        self.path = stamp_path(sqlite_path)
        self._seen = self._key()

    def _key(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def changed(self) -> bool:
        key = self._key()
        if key == self._seen:
            return False
        self._seen = key
        return True

    def received(self) -> int:
        return 0

    def await_notice(self, _after: int) -> None:
        """The stamp is written before the change returns: nothing to wait for."""

    def close(self) -> None:
        pass


class NoticeWatch:
    """A LISTEN connection to a PostgreSQL store: a route call reads what has arrived (no
    query); a thread keeps the connection up and reads it while no request comes."""

    def __init__(self, url: str) -> None:
        self._conninfo = make_url(url).set(drivername="postgresql").render_as_string(
            hide_password=False)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._flag = False
        self._received = 0
        self._outage = False  # the connection is down and that was said
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="abvoc-route-notices",
                                        daemon=True)
        self._thread.start()

    def _keep(self) -> None:
        backoff = BACKOFF_S[0]
        while not self._stop.is_set():
            if self._conn is None:
                try:
                    conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5,
                                           keepalives=1, keepalives_idle=30)
                    conn.execute(f"LISTEN {CHANNEL}")
                except psycopg.Error as exc:
                    # Said once an outage: each retry of a long one would say it again.
                    (log.debug if self._outage else log.warning)(
                        "routing notices: cannot listen on the store (%s); trying again "
                        "with backoff up to %.0f s (changes are read by the periodic reload "
                        "meanwhile)", exc, BACKOFF_S[1])
                    self._outage = True
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_S[1])
                    continue
                with self._lock:
                    self._conn, self._flag = conn, True  # notices sent meanwhile were lost
                if self._outage:
                    log.warning("routing notices: listening on the store again")
                    self._outage = False
                backoff = BACKOFF_S[0]
            with self._lock:
                self._drain()
            self._stop.wait(1.0)

    def _drain(self) -> None:
        """Read the notices that have arrived (the lock held)."""
        conn = self._conn
        if conn is None:
            return
        try:
            conn.pgconn.consume_input()
            while conn.pgconn.notifies() is not None:
                self._flag = True
                self._received += 1
        except psycopg.Error:
            log.warning("routing notices: the LISTEN connection was lost; reconnecting "
                        "(changes are read by the periodic reload meanwhile)")
            conn.close()
            self._conn, self._flag, self._outage = None, True, True

    def changed(self) -> bool:
        # The lock is held only while reading what has arrived (µs), never across a wait: a
        # request that skipped the look while the thread read could miss the change.
        with self._lock:
            self._drain()
            flag, self._flag = self._flag, False
            return flag

    def received(self) -> int:
        return self._received

    def await_notice(self, after: int) -> None:
        """Wait (up to NOTICE_WAIT_S) until a notice past `after` came back on this process's
        own connection, then NOTICE_GRACE_S: the server signals every listener at the commit,
        and each listener's server process sends it when scheduled, so the others have theirs
        by then, before the change's caller is answered (a lost race costs the requests of a
        few milliseconds, not of the refresh period)."""
        deadline = time.monotonic() + NOTICE_WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            with self._lock:
                self._drain()
                if self._conn is None:
                    return
                if self._received > after:
                    break
                fd = self._conn.pgconn.socket
            try:
                select.select([fd], [], [], left)
            except (OSError, ValueError):  # the thread closed it: a lost connection
                return
        else:
            return  # no notice came back: the connection is down, the reload comes later
        time.sleep(NOTICE_GRACE_S)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def watch(db: Database) -> StampWatch | NoticeWatch | None:
    """The watch for a store's routing changes (None: an in-memory store, one process)."""
    if db.dialect == "postgresql":
        return NoticeWatch(db.url)
    path = sqlite_file(db.url)
    return StampWatch(path) if path else None
