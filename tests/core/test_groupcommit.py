"""Group commit: concurrent writers share commits; a failing unit fails alone."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from core.store import schema
from core.store.db import BUSY_TIMEOUT_MS, Database, store_unreachable, utcnow
from core.store.groupcommit import GroupCommitter
from core.store.models import OutboxEvent, ServedPrediction
from tests.support.flow import joined
from tests.support.postgres import PostgresServer


def _unit(i: int) -> dict:
    return {ServedPrediction.__table__: {
        "prediction_id": f"p{i}", "experiment_id": None, "candidate": "c",
        "created_at": utcnow()}}


def test_concurrent_units_commit_and_a_bad_one_fails_alone(db: Database) -> None:
    committer = GroupCommitter(db)
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            # unit 7 repeats unit 3's key: a constraint violation inside a shared batch
            committer.insert(_unit(3 if i == 7 else i))
            results[i] = i
        except Exception as exc:  # noqa: BLE001 - the error is the result under test
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(40)]
    for t in threads:
        t.start()
    joined(threads)
    committer.close()
    failed = [i for i, r in results.items() if isinstance(r, Exception)]
    assert len(failed) == 1 and failed[0] in (3, 7)
    # the driver's error reaches the caller as SQLAlchemy's, as every other store error does
    assert isinstance(results[failed[0]], IntegrityError)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ServedPrediction)) == 39
    with pytest.raises(RuntimeError, match="closed"):
        committer.insert(_unit(99))


def test_many_writers_each_get_their_answer_once_all_rows_are_in(db: Database) -> None:
    """Waiters are woken one by one and the lead passes from thread to thread: under a steady
    stream from many threads every call returns, and every row is stored once."""
    committer = GroupCommitter(db, linger_s=0.0005)
    errors: list[Exception] = []

    def writer(t: int) -> None:
        try:
            for i in range(25):
                committer.insert(_unit(t * 1000 + i))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads) and errors == []
    committer.close()
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ServedPrediction)) == 12 * 25


def test_a_unit_over_two_tables_is_stored_whole_or_not_at_all(db: Database) -> None:
    """The raw write opens its own transaction (on SQLite the driver runs in autocommit mode):
    an outbox row whose ledger row fails is not stored either, and the connection stays usable."""
    committer = GroupCommitter(db)
    committer.insert(_unit(1))
    outbox = {"event_id": "e1", "topic": "t", "key": "p1", "payload": b"{}",
              "created_at": utcnow(), "attempts": 0}
    with pytest.raises(IntegrityError):
        committer.insert({OutboxEvent.__table__: outbox, **_unit(1)})
    committer.insert({OutboxEvent.__table__: outbox | {"event_id": "e2"}, **_unit(2)})
    committer.close()
    with db.session() as s:
        assert s.scalars(select(OutboxEvent.event_id)).all() == ["e2"]
        assert s.scalar(select(func.count()).select_from(ServedPrediction)) == 2


def test_the_held_sqlite_connection_goes_back_to_the_pool_with_its_busy_timeout(
        tmp_path) -> None:  # noqa: ANN001
    """While the committer holds its connection the busy timeout is off (it waits for the lock
    itself); the connection the pool gets back waits as every other does."""
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    schema.upgrade(db)
    committer = GroupCommitter(db)
    committer.insert(_unit(1))
    held = committer._conn
    assert held is not None and _busy_timeout(held) == 0
    held_dbapi = held.dbapi_connection
    committer.close()
    conn = db.engine.raw_connection()
    try:
        assert conn.dbapi_connection is held_dbapi  # the same one, handed back
        assert _busy_timeout(conn) == BUSY_TIMEOUT_MS
    finally:
        conn.close()
        db.dispose()


def _busy_timeout(conn) -> int:  # noqa: ANN001 - a pooled DBAPI connection
    cursor = conn.cursor()
    try:
        return cursor.execute("PRAGMA busy_timeout").fetchone()[0]
    finally:
        cursor.close()


def test_one_caller_writes_several_units_each_with_its_own_outcome(db: Database) -> None:
    """A candidate's batcher commits its batch's records at once: one unit's failure is its
    own; units of another shape (a shadow's keeps no input) share the transaction too."""
    committer = GroupCommitter(db)
    committer.insert(_unit(1))
    outbox = {"event_id": "e5", "topic": "t", "key": "p5", "payload": b"{}",
              "created_at": utcnow(), "attempts": 0}
    errors = committer.insert_many([_unit(2), _unit(1), {OutboxEvent.__table__: outbox,
                                                         **_unit(5)}, _unit(3)])
    assert errors[0] is None and errors[2] is None and errors[3] is None
    assert isinstance(errors[1], IntegrityError)  # p1 again: that unit alone
    committer.close()
    with db.session() as s:
        assert sorted(s.scalars(select(ServedPrediction.prediction_id))) == [
            "p1", "p2", "p3", "p5"]
        assert s.scalars(select(OutboxEvent.event_id)).all() == ["e5"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_batch_goes_to_sqlite_in_a_few_multi_row_statements(db: Database) -> None:
    """50 units in one commit: one INSERT per power-of-two chunk (32 + 16 + 2 rows), not one
    step per row, each of which lets the GIL go to whichever thread wants it."""
    committer = GroupCommitter(db)
    texts: list[str] = []
    committer._connection().dbapi_connection.set_trace_callback(texts.append)
    errors = committer.insert_many([_unit(i) for i in range(50)])
    committer._connection().dbapi_connection.set_trace_callback(None)
    committer.close()
    assert errors == [None] * 50
    inserts = [t for t in texts if t.startswith("INSERT")]
    assert sorted(t.count("), (") + 1 for t in inserts) == [2, 16, 32]
    with db.session() as s:
        assert sorted(s.scalars(select(ServedPrediction.prediction_id))) == sorted(
            f"p{i}" for i in range(50))


def test_a_lone_insert_commits_on_the_callers_thread(db: Database) -> None:
    """No writer thread to hand rows to and wait for: the caller leads its own commit."""
    with db.session() as s:  # the store's own threads (SQLite's checkpoints) start with its use
        s.execute(select(1))
    threads = threading.active_count()
    committer = GroupCommitter(db)
    committer.insert(_unit(1))
    assert threading.active_count() == threads
    committer.close()
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ServedPrediction)) == 1


def test_a_connection_lost_between_commits_is_replaced(postgres) -> None:  # noqa: ANN001
    """The committer keeps one connection; when the server drops it (a restart, an idle
    timeout), the next insert reconnects instead of failing its caller."""
    db = Database(postgres.create_database())
    schema.upgrade(db)
    committer = GroupCommitter(db)
    committer.insert(_unit(1))
    with Database(db.url) as other, other.engine.connect() as conn:  # not from db's pool
        dropped = conn.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
    assert dropped >= 1
    committer.insert(_unit(2))
    committer.close()
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ServedPrediction)) == 2
    db.dispose()


def test_a_store_outage_reaches_the_caller_as_the_store_being_unreachable() -> None:
    """The raw write raises SQLAlchemy's errors, so the API's handler still answers 503 (retry)
    while the store is down, and the next insert after it is back reconnects by itself."""
    server = PostgresServer().start()
    try:
        db = Database(server.create_database())
        schema.upgrade(db)
        committer = GroupCommitter(db)
        committer.insert(_unit(1))
        server.halt()
        with pytest.raises(SQLAlchemyError) as down:
            committer.insert(_unit(2))
        assert store_unreachable(down.value)
        server.start()
        committer.insert(_unit(3))
        committer.close()
        with db.session() as s:
            assert s.scalars(select(ServedPrediction.prediction_id)).all() == ["p1", "p3"]
        db.dispose()
    finally:
        server.stop()
