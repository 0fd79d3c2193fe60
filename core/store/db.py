"""Engines and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import ConfigError
from core.folders import unwritable
from core.settings import mask_url
from core.store import json_text
from core.store.checkpoint import Checkpointer

READ_ONLY = "abvoc_read_only"
"""Execution option marking a connection whose transaction only reads."""


_STORE_DOWN = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
               sa_exc.TimeoutError)


def store_unreachable(exc: BaseException) -> bool:
    """Whether an error says the store is unreachable (down, restarting, connection lost) rather
    than that a request or an event is bad."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _STORE_DOWN)


def utcnow() -> datetime:
    return datetime.now(UTC)


BUSY_TIMEOUT_MS = 30000
QUICK_WAIT_S = 2.0


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DBAPI hook
    # WAL lets several processes read while one writes; busy_timeout makes writers wait their turn.
    # Checkpoints run in each process's Checkpointer thread, not in whichever commit comes next.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA wal_autocheckpoint=0")
    cur.close()


SQLITE_WRITE_BEGIN = "BEGIN IMMEDIATE"
"""Opens a SQLite write transaction (through :func:`begin_write`). The SQLite connections run in
the driver's autocommit mode (SQLAlchemy issues BEGIN through `_sqlite_begin`), so a raw write
there must begin its own transaction or each statement would commit alone; psycopg opens one
itself on the first statement."""


def begin_write(cursor: Any, *, held: bool = False) -> None:
    """BEGIN IMMEDIATE on a SQLite connection, trying again within a millisecond or two while
    another connection holds the write lock (for up to QUICK_WAIT_S, then SQLite's own wait).

    SQLite's busy handler sleeps 1, 2, 5, ... up to 100 ms between tries and nothing wakes it
    when the lock frees: with the API's writer, the relay and the worker taking turns at the
    one write lock, the lock sat idle about a third of the time (bench_bus, traced).

    `held`: the connection is one writer's own and keeps busy_timeout=0 between writes (see
    :func:`hold_for_writes`), so a write that finds the lock free runs one statement here, not
    three (the two PRAGMAs cost as much as an INSERT)."""
    if not held:
        cursor.execute("PRAGMA busy_timeout=0")
    waited = False
    try:
        deadline, pause = time.monotonic() + QUICK_WAIT_S, 0.0002
        while time.monotonic() < deadline:
            try:
                cursor.execute(SQLITE_WRITE_BEGIN)
                return
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.002)
        waited = True
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute(SQLITE_WRITE_BEGIN)  # a long wait: SQLite's own, up to the busy timeout
    finally:
        if held and waited:
            cursor.execute("PRAGMA busy_timeout=0")
        elif not held and not waited:
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def hold_for_writes(dbapi_conn: Any, held: bool) -> None:
    """Turn a SQLite connection's busy timeout off while one writer holds it for
    :func:`begin_write`'s `held` mode (True), or back on before it returns to the pool."""
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={0 if held else BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def write_lock_free(engine: Engine) -> bool:
    """Whether a SQLite store's write lock is free now (taken and let go at once, no wait): a
    spool's reader asks when the spool's commit has waited long, to tell a store still held by
    another writer (read what is there) from one let go a moment ago (wait for the rows)."""
    dbapi_conn = engine.raw_connection()
    try:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout=0")
            try:
                cursor.execute(SQLITE_WRITE_BEGIN)
            except sqlite3.Error:  # busy, or not writable at all: the rows wait either way
                return False
            cursor.execute("ROLLBACK")
            return True
        finally:
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.close()
    finally:
        dbapi_conn.close()


def _sqlite_begin(conn) -> None:  # noqa: ANN001 - a Connection
    # Write transactions start eagerly (BEGIN IMMEDIATE), so two writers never deadlock upgrading
    # a read lock. Read-only units of work begin deferred: under WAL they read a snapshot and
    # never wait for, or block, a writer.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
        return
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        begin_write(cursor)
    except sqlite3.Error as exc:  # raised as SQLAlchemy's, as a statement's error would be
        raise sa_exc.DBAPIError.instance(SQLITE_WRITE_BEGIN, None, exc, sqlite3.Error) \
            from exc
    finally:
        cursor.close()


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL (None for another backend or an in-memory database)."""
    if not url.startswith("sqlite"):
        return None
    parsed = make_url(url)
    memory = parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"
    return None if memory else parsed.database


_read_barriers: dict[str, list[Callable[[], object]]] = {}
_depth = threading.local()


def add_read_barrier(sqlite_path: str, barrier: Callable[[], object]) -> None:
    """Call `barrier` before each outermost unit of work this process opens on the SQLite file:
    the request spool (core.store.spool) commits what it holds, so the process reads its own
    answers' rows, whichever Database object it reads them through."""
    _read_barriers.setdefault(os.path.realpath(sqlite_path), []).append(barrier)


def remove_read_barrier(sqlite_path: str, barrier: Callable[[], object]) -> None:
    key = os.path.realpath(sqlite_path)
    barriers = _read_barriers.get(key, [])
    if barrier in barriers:
        barriers.remove(barrier)
    if not barriers:
        _read_barriers.pop(key, None)


@contextmanager
def _outermost(key: str | None) -> Iterator[None]:
    """Run the file's read barriers when no unit of work is open on this thread (a nested one
    must not wait for a writer its outer one may hold up)."""
    depth = getattr(_depth, "n", 0)
    if not depth and _read_barriers and key:
        for barrier in tuple(_read_barriers.get(key, ())):
            barrier()
    _depth.n = depth + 1
    try:
        yield
    finally:
        _depth.n = depth


def _sqlite_folder(db_path: str, create: bool) -> None:
    """Make the SQLite file's folder (when `create`), or say why there is no store there: a
    one-line error naming the variable instead of the driver's traceback."""
    path = Path(db_path)
    if not create:
        if not path.is_file():
            # A relative data folder is the usual cause (a command run from another folder
            # than the service's): making a store there would split the data in two.
            raise ConfigError(f"there is no store at {path} yet (not migrated; "
                              "ABVOC_DATABASE_URL, default <ABVOC_DATA_DIR>/abvoc.db, and "
                              "ABVOC_DATA_DIR defaults to ./data in the current folder): point "
                              "them at the service's store, or run `abvoc db upgrade` to make "
                              "a new one here")
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # owner-only, as made here
        _owner_only_file(path)
    except OSError as exc:
        raise ConfigError(f"the store's folder {path.parent} cannot be made "
                          f"({exc.strerror or exc}): set ABVOC_DATA_DIR or ABVOC_DATABASE_URL "
                          "to a writable place") from None


def _owner_only_file(path: Path) -> None:
    """Create a new store file readable by its owner only (it holds customers' comments and
    kept inputs): an empty file is an empty SQLite database, and SQLite gives its -wal and -shm
    files the database file's mode. An existing file is left as the operator set it."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_engine(url: str, *, create: bool = True, **kwargs) -> Engine:
    """An engine with the settings abvoc relies on for each backend; `create` False: a missing
    SQLite file is an error rather than a new, empty store."""
    if url.startswith("sqlite"):
        db_path = sqlite_file(url)
        if db_path:
            _sqlite_folder(db_path, create)
        # The statement cache holds the batch inserts' chunk texts too (core.store.driver).
        engine = create_engine(url, connect_args={"timeout": 30, "cached_statements": 512},
                               json_serializer=json_text.dumps, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)

        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn, _record) -> None:  # noqa: ANN001
            dbapi_conn.isolation_level = None

        return engine
    # The session's time zone pinned to UTC: a server whose TimeZone is not UTC handed every
    # stored time back in its own zone, which pages labelled UTC and stepped through by the
    # hour (across its daylight-saving changes).
    connect_args = {"options": "-c TimeZone=UTC", **kwargs.pop("connect_args", {})}
    return create_engine(url, pool_pre_ping=True, json_serializer=json_text.dumps,
                         connect_args=connect_args, **kwargs)


class Database:
    """One engine and its session factory; `session()` is a unit of work that commits or rolls
    back as a whole, so nothing partial is ever stored."""

    def __init__(self, url: str, *, create: bool = True, **engine_kwargs) -> None:
        self.url = url
        self.engine = make_engine(url, create=create, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        self.checkpointer: Checkpointer | None = None
        self._sqlite_path = sqlite_file(url)
        self._barrier_key = os.path.realpath(self._sqlite_path) if self._sqlite_path else None
        self._checkpointer_lock = threading.Lock()
        if self._sqlite_path:
            event.listen(self.engine, "connect", self._start_checkpoints)

    def _start_checkpoints(self, *_connect_args: object) -> None:
        """Checkpoint a SQLite file's log from the first connection on, and again when the
        store is used after `dispose` (which stops the thread)."""
        with self._checkpointer_lock:
            if self.checkpointer is None:
                self.checkpointer = Checkpointer(self._sqlite_path).start()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        with _outermost(self._barrier_key), self._sessions.begin() as session:
            yield session

    @contextmanager
    def reading(self, *, own_answers: bool = True) -> Iterator[Session]:
        """A unit of work that only reads: on SQLite it takes no write lock, so polls, health
        checks and outbox scans never queue behind (or hold up) a writer. `own_answers=False`:
        a read on the request path that needs none of the answers' rows (the router's) does not
        wait for the request spool."""
        with _outermost(self._barrier_key if own_answers else None), \
                self._readers.begin() as session:
            yield session

    def check(self, variable: str = "ABVOC_DATABASE_URL") -> None:
        """Fail fast, naming the variable, when the database cannot be reached."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            folder = Path(path).parent if (path := sqlite_file(self.url)) else None
            if folder is not None and (problem := unwritable(folder)):
                # SQLite writes beside its file (the WAL's -shm) even to read: "unable to open
                # database file" read like a network fault.
                raise ConfigError(f"{variable}={mask_url(self.url)!r} cannot be opened: SQLite "
                                  f"needs to write in {folder}, even to read, and cannot "
                                  f"({problem}); make that folder writable") from exc
            raise self.unreachable(exc, variable) from exc
        except sa_exc.DatabaseError as exc:  # e.g. SQLite: "file is not a database"
            raise ConfigError(
                f"{variable}={mask_url(self.url)!r} cannot be used as the store: {exc.orig}"
            ) from exc

    def unreachable(self, exc: sa_exc.SQLAlchemyError,
                    variable: str = "ABVOC_DATABASE_URL") -> ConfigError:
        """The one line a start stops with when the store cannot be reached, or was lost on
        the way (`exc`: an error :func:`store_unreachable` says so of), naming the variable."""
        # psycopg's reason runs on to a tab-indented hint line: joined, so it stays one line.
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        return ConfigError(f"{variable}={mask_url(self.url)!r} is unreachable: {reason}")

    def dispose(self) -> None:
        with self._checkpointer_lock:
            checkpointer, self.checkpointer = self.checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.dispose()
