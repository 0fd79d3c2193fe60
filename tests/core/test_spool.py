"""The request spool: answers' rows appended to a file, committed by a mover, read back by the
process at once, and committed exactly once by the next process after a crash."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from core.errors import ConfigError
from core.settings import load_settings
from core.store.db import Database, utcnow, write_lock_free
from core.store.groupcommit import GroupCommitter
from core.store.models import OutboxEvent, PredictionInput, ServedPrediction, SpoolProgress
from core.store.request_writer import request_writer
from core.store.spool import BARRIER_TIMEOUT_S, Spool
from core.store.spool_file import read_records, segments, spool_folder
from core.store.spool_others import RecordPending, await_row, settle

ROOT = Path(__file__).resolve().parents[2]


def _unit(i: int, *, image: bytes = b"\x89PNG...") -> dict:
    """One answer's rows, as serving.answer_rows.answer_rows makes them: a row in three tables."""
    now = utcnow()
    return {
        OutboxEvent.__table__: {"event_id": f"e{i}", "topic": "t", "key": f"p{i}",
                                "payload": b'{"x": 1}', "created_at": now,
                                "attempts": 0},
        ServedPrediction.__table__: {"prediction_id": f"p{i}", "experiment_id": 7, "arm": "a",
                                     "candidate": "c", "created_at": now, "latency_ms": 1.5,
                                     "error": False},
        PredictionInput.__table__: {"prediction_id": f"p{i}", "input_hash": "h" * 64,
                                    "kind": "image", "data": image, "created_at": now},
    }


def _counts(path: Path) -> tuple[int, ...]:
    """Each table's rows, read past the process's own read barrier (a plain connection)."""
    with closing(sqlite3.connect(path)) as conn:
        return tuple(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                     for table in ("outbox", "served_predictions", "prediction_inputs"))


@pytest.fixture
def sqlite_db(tmp_path: Path, sqlite_head: Path) -> Database:
    path = tmp_path / "abvoc.db"
    with closing(sqlite3.connect(sqlite_head)) as head, closing(sqlite3.connect(path)) as copy:
        head.backup(copy)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


def _path(db: Database) -> Path:
    return Path(db.url.removeprefix("sqlite:///"))


def test_rows_are_read_back_at_once_through_any_database_object(sqlite_db: Database) -> None:
    spool = Spool(sqlite_db, linger_s=30)  # the mover would wait 30 s: only a read flushes
    try:
        assert spool.insert_many([_unit(i) for i in range(5)]) == [None] * 5
        assert spool.pending()[0] == 5
        assert _counts(_path(sqlite_db)) == (0, 0, 0)  # another connection: not yet
        other = Database(sqlite_db.url)  # the process's own reads wait for its spool
        try:
            with other.reading() as s:
                assert s.scalar(select(func.count()).select_from(ServedPrediction)) == 5
                progress = s.scalars(select(SpoolProgress)).all()
        finally:
            other.dispose()
        assert spool.pending()[0] == 0
        assert _counts(_path(sqlite_db)) == (5, 5, 5)
        [seg] = segments(spool.folder, spool.owner)
        assert [(p.segment, p.applied) for p in progress] == [(seg.name, seg.stat().st_size)]
        assert [len(g) for _, g in read_records(seg, 0)] == [3] * 5
    finally:
        spool.close()
    assert list(spool.folder.iterdir()) == []  # a clean stop leaves nothing
    with sqlite_db.reading() as s:
        assert s.scalar(select(func.count()).select_from(SpoolProgress)) == 0


def test_segments_rotate_and_go_once_committed(sqlite_db: Database) -> None:
    spool = Spool(sqlite_db, segment_bytes=2000)
    try:
        for i in range(40):
            spool.insert(_unit(i, image=bytes(200)))
        assert spool.flush()
        spool.insert(_unit(99))  # after the last rotation, so the one before can go
        assert spool.flush()
        left = segments(spool.folder, spool.owner)
        assert len(left) <= 2
        assert _counts(_path(sqlite_db)) == (41, 41, 41)
    finally:
        spool.close()


_CRASH = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    from tests.core.test_spool import _unit
    from core.store.db import Database
    from core.store.spool import Spool
    spool = Spool(Database({url!r}), linger_s=60)
    spool.insert_many([_unit(i) for i in range(0, 3)])
    assert spool.flush()  # committed: the next process must not commit these again
    spool.insert_many([_unit(i) for i in range(3, 8)])  # answered, never committed
    print(spool.owner, flush=True)
    os._exit(0)  # a crash: no close, the lock dropped with the process
""")


def test_a_dead_process_s_rows_are_committed_once_by_the_next(sqlite_db: Database) -> None:
    out = subprocess.run([sys.executable, "-c", _CRASH.format(root=str(ROOT),
                                                              url=sqlite_db.url)],
                         capture_output=True, text=True, timeout=120, check=True)
    owner = out.stdout.strip()
    path = _path(sqlite_db)
    assert _counts(path) == (3, 3, 3)
    [seg] = segments(spool_folder(str(path)), owner)
    with open(seg, "ab") as f:  # a record the crash cut short: its caller was never answered
        f.write(b"\x40\x00\x00\x00\x01\x02")
    spool = Spool(sqlite_db)  # looks for dead owners' spools as it starts
    try:
        deadline = time.monotonic() + 30
        while _counts(path) != (8, 8, 8) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _counts(path) == (8, 8, 8)
        assert spool.rejected == 0  # nothing committed twice (the keys are unique)
        time.sleep(0.2)
        assert not (spool.folder / f"{owner}.lock").exists()
        assert segments(spool.folder, owner) == []
        with sqlite_db.reading() as s:
            assert s.scalars(select(SpoolProgress.segment)
                             .where(SpoolProgress.segment.like(f"{owner}.%"))).all() == []
    finally:
        spool.close()


def test_a_unit_the_store_refuses_is_set_aside_and_the_rest_go_on(sqlite_db: Database) -> None:
    GroupCommitter(sqlite_db).insert(_unit(3))  # unit 3's keys are taken already
    spool = Spool(sqlite_db, linger_s=30)
    try:
        assert spool.insert_many([_unit(i) for i in range(6)]) == [None] * 6
        assert spool.flush()
        assert spool.rejected == 1
        assert _counts(_path(sqlite_db)) == (6, 6, 6)
        rejected = spool.folder / f"{spool.owner}.rejected"
        assert rejected.stat().st_mode & 0o777 == 0o600  # its rows, kept input included
        [(_, kept)] = list(read_records(rejected, 0))
        assert kept[0][0] == "error" and "UNIQUE constraint failed" in kept[0][2]
        assert [g[0] for g in kept[1:]] == ["outbox", "served_predictions", "prediction_inputs"]
    finally:
        spool.close()


def test_a_locked_store_holds_the_rows_until_it_frees(sqlite_db: Database) -> None:
    path = _path(sqlite_db)
    spool = Spool(sqlite_db, linger_s=0)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the store
        start = time.perf_counter()
        assert spool.insert_many([_unit(i) for i in range(4)]) == [None] * 4
        assert time.perf_counter() - start < 1  # the callers are answered regardless
        time.sleep(0.5)
        assert spool.pending()[0] == 4
        blocker.execute("ROLLBACK")
        assert spool.flush(timeout=60)
        assert _counts(path) == (4, 4, 4)
    finally:
        blocker.close()
        spool.close()


def test_reads_skip_a_long_held_store_and_wait_again_once_it_is_let_go(
        sqlite_db: Database) -> None:
    """While another writer holds the store past the barrier's timeout, reads go on at once;
    the first read after it lets go waits for the spool again and sees every row (the mover,
    in SQLite's busy wait, takes the lock a few ms later: read at once, it saw none)."""
    path = _path(sqlite_db)
    spool = Spool(sqlite_db, linger_s=0)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        write_lock_free(sqlite_db.engine)  # the connections made, as a running service has them
        with sqlite_db.reading():
            pass
        blocker.execute("BEGIN IMMEDIATE")
        assert spool.insert_many([_unit(i) for i in range(3)]) == [None] * 3
        time.sleep(BARRIER_TIMEOUT_S + 0.3)  # the mover's try has waited past the timeout
        for _ in range(3):
            start = time.perf_counter()
            with sqlite_db.reading() as s:
                assert s.scalar(select(func.count()).select_from(OutboxEvent)) == 0
            # The held store's reads do not wait for the spool (a first one may take SQLite
            # ~0.1 s to begin beside the held lock).
            assert time.perf_counter() - start < BARRIER_TIMEOUT_S / 2
        blocker.execute("ROLLBACK")
        with sqlite_db.reading() as s:
            assert s.scalar(select(func.count()).select_from(OutboxEvent)) == 3
        assert spool.pending()[0] == 0
    finally:
        blocker.close()
        spool.close()


def test_reads_do_not_wait_again_while_the_spool_s_commits_fail(
        sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that fails the mover's commits (a disk error) with its lock free: after the
    first read's wait, reads go on at once, each not waiting its second for a commit that
    keeps failing; the rows follow once the store takes them."""
    spool = Spool(sqlite_db, linger_s=0)

    def failing(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("COMMIT", None, sqlite3.OperationalError("disk I/O error"))

    monkeypatch.setattr(spool._committer, "write_params", failing)
    try:
        spool.insert(_unit(1))
        time.sleep(BARRIER_TIMEOUT_S + 0.3)
        for _ in range(3):
            start = time.perf_counter()
            with sqlite_db.reading():
                pass
            assert time.perf_counter() - start < BARRIER_TIMEOUT_S / 2
        monkeypatch.undo()
        assert spool.flush(timeout=30)
        assert _counts(_path(sqlite_db)) == (1, 1, 1)
    finally:
        spool.close()


def test_a_row_still_spooled_behind_a_held_store_is_pending_not_unknown(
        sqlite_db: Database) -> None:
    """A correction for an answer whose ledger row waits in the spool while another writer holds
    the store gets a 503 to retry, not a 404 saying the prediction is unknown."""
    path = _path(sqlite_db)
    spool = Spool(sqlite_db, linger_s=0)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        await_row(sqlite_db, ServedPrediction, "p-none")  # nothing spooled: the caller's 404
        blocker.execute("BEGIN IMMEDIATE")
        assert spool.insert_many([_unit(1)]) == [None]
        with pytest.raises(RecordPending) as raised:
            await_row(sqlite_db, ServedPrediction, "p1", timeout_s=0.2)
        assert raised.value.status == 503
        assert ("Retry-After", "1") in raised.value.headers
        assert "send the request again" in raised.value.message
        blocker.execute("ROLLBACK")
        await_row(sqlite_db, ServedPrediction, "p1", timeout_s=30)
        with sqlite_db.reading() as s:
            assert s.get(ServedPrediction, "p1") is not None
        await_row(sqlite_db, ServedPrediction, "p-none")  # settled: unknown is unknown again
    finally:
        blocker.close()
        spool.close()


_OTHER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from tests.core.test_spool import _unit
    from core.store.db import Database
    from core.store.spool import Spool
    spool = Spool(Database({url!r}), linger_s=3)
    spool.insert(_unit(1))
    print("appended", flush=True)
    time.sleep(30)
""")


def test_settle_waits_for_another_process_s_spool(sqlite_db: Database) -> None:
    other = subprocess.Popen([sys.executable, "-c", _OTHER.format(root=str(ROOT),
                                                                  url=sqlite_db.url)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "appended"
        with sqlite_db.reading() as s:
            assert s.get(ServedPrediction, "p1") is None  # still in the other's spool
        assert not settle(sqlite_db, timeout_s=30)  # nothing left uncommitted
        with sqlite_db.reading() as s:
            assert s.get(ServedPrediction, "p1") is not None  # it waited for the commit
        assert not settle(sqlite_db)
    finally:
        other.kill()
        other.wait()
        other.stdout.close()


def test_the_writer_follows_the_store_and_the_setting(sqlite_db: Database, tmp_path: Path,
                                                       postgres) -> None:  # noqa: ANN001
    spooled = request_writer(sqlite_db)
    assert isinstance(spooled, Spool)
    spooled.close()
    assert type(request_writer(sqlite_db, False)) is GroupCommitter
    pg_url = postgres.create_database(migrated=True)
    pg = Database(pg_url)
    try:
        assert type(request_writer(pg)) is GroupCommitter  # the server's commit is stronger
    finally:
        pg.dispose()
        postgres.drop_database(pg_url)
    env = {"ABVOC_DATA_DIR": str(tmp_path)}
    assert load_settings(env=env).request_spool
    for off in ("off", "0", "false", "No"):
        assert not load_settings(env={**env, "ABVOC_REQUEST_SPOOL": off}).request_spool
    with pytest.raises(ConfigError, match="ABVOC_REQUEST_SPOOL.*must be on or off"):
        load_settings(env={**env, "ABVOC_REQUEST_SPOOL": "sometimes"})


def test_a_spool_folder_that_cannot_be_made_is_named(sqlite_db: Database) -> None:
    spool_folder(str(_path(sqlite_db))).write_text("a file where the folder goes")
    with pytest.raises(ConfigError, match=r"the request spool .*abvoc\.db-spool cannot be made "
                                          r"or locked \(File exists\).*ABVOC_REQUEST_SPOOL=off"):
        request_writer(sqlite_db)
