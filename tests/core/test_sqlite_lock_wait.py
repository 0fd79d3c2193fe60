"""A SQLite write transaction takes the lock soon after the holder lets it go: SQLite's own busy
handler would sleep up to 100 ms between its tries (the API, the relay and the worker take turns
at the one write lock, and each such sleep leaves it idle)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from core.store import db as db_module
from core.store.db import BUSY_TIMEOUT_MS, Database, begin_write


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                           check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def test_the_lock_is_taken_within_milliseconds_of_its_release(tmp_path: Path) -> None:
    holder, waiter = _connect(tmp_path / "x.db"), _connect(tmp_path / "x.db")
    holder.execute("BEGIN IMMEDIATE")
    taken: list[float] = []

    def wait() -> None:
        begin_write(waiter.cursor())
        taken.append(time.monotonic())
        waiter.execute("COMMIT")

    thread = threading.Thread(target=wait)
    thread.start()
    # 335 ms in, SQLite's own handler has just slept past 328 ms and sleeps until 428 ms.
    time.sleep(0.335)
    holder.execute("COMMIT")
    released = time.monotonic()
    thread.join(10)
    assert taken, "the waiter never took the lock"
    assert taken[0] - released < 0.04
    # The connection keeps its long busy timeout for every other statement.
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS


def test_a_long_wait_falls_back_to_sqlites_own_and_other_errors_pass_through(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_module, "QUICK_WAIT_S", 0.05)
    holder, waiter = _connect(tmp_path / "x.db"), _connect(tmp_path / "x.db")
    waiter.execute("PRAGMA busy_timeout=1")
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(db_module, "BUSY_TIMEOUT_MS", 300)
    start = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        begin_write(waiter.cursor())
    assert time.monotonic() - start >= 0.3  # the quick tries, then SQLite's 300 ms wait
    holder.execute("COMMIT")
    begin_write(waiter.cursor())
    with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
        begin_write(waiter.cursor())  # not a busy lock: raised at once


def test_a_session_that_cannot_get_the_lock_raises_sqlalchemys_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_module, "QUICK_WAIT_S", 0.05)
    monkeypatch.setattr(db_module, "BUSY_TIMEOUT_MS", 100)
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    holder = _connect(tmp_path / "x.db")
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(OperationalError, match="locked"), db.session() as s:
        s.execute(text("SELECT 1"))
    holder.execute("COMMIT")
    with db.session() as s:
        assert s.execute(text("SELECT 1")).scalar() == 1
    db.dispose()


def test_a_held_writer_keeps_its_busy_timeout_off_after_a_quick_or_a_long_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The group committer's own connection begins with one statement, not three: its busy
    timeout stays 0 between writes, whichever way the lock was taken."""
    monkeypatch.setattr(db_module, "QUICK_WAIT_S", 0.05)
    holder, writer = _connect(tmp_path / "x.db"), _connect(tmp_path / "x.db")
    writer.execute("PRAGMA busy_timeout=0")
    begin_write(writer.cursor(), held=True)  # the lock is free: taken at once
    writer.execute("COMMIT")
    assert writer.execute("PRAGMA busy_timeout").fetchone()[0] == 0
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.2, lambda: holder.execute("COMMIT")).start()
    start = time.monotonic()
    begin_write(writer.cursor(), held=True)  # past the quick tries: SQLite's own wait
    assert 0.15 < time.monotonic() - start < 5
    writer.execute("COMMIT")
    assert writer.execute("PRAGMA busy_timeout").fetchone()[0] == 0
