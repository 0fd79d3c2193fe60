"""Inserts through the driver's cursor store and return what SQLAlchemy's execution would."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.store import schema
from core.store.db import Database
from core.store.models import OnlineAggregate, OutboxEvent, Prediction
from core.store.upsert import insert_many, insert_rows

T0 = datetime(2026, 11, 20, 8, tzinfo=UTC)


def _prediction(i: int) -> dict:
    return {"prediction_id": f"p{i:05d}", "event_id": f"e{i}", "experiment_id": 1,
            "candidate": "c", "arm": "control", "shadow": i % 2 == 0, "unit_id": None,
            "slice": "all", "input_hash": f"{i:016x}", "output": "x^{2}",
            "output_type": None, "confidence": i / 1000 if i % 3 else None, "latency_ms": 7,
            "stages": {"n": i, "text": "ü"}, "created_at": T0 + timedelta(microseconds=i)}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_rows_read_back_as_sqlalchemy_wrote_them(db: Database, tmp_path: Path) -> None:
    rows = [_prediction(i) for i in range(300)]
    with db.session() as s:
        fresh = insert_rows(s, Prediction.__table__, rows, ["prediction_id"],
                            returning=["prediction_id"])
    assert sorted(r.prediction_id for r in fresh) == [r["prediction_id"] for r in rows]
    # The same rows written by SQLAlchemy's own execution, into a second store.
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    schema.upgrade(other)
    with other.session() as s:
        s.execute(Prediction.__table__.insert(), rows)
    columns = list(rows[0])

    def stored(database: Database) -> list[tuple]:
        with database.reading() as s:
            return [tuple(r) for r in s.execute(
                select(*(Prediction.__table__.c[c] for c in columns))
                .order_by(Prediction.prediction_id))]

    assert stored(db) == stored(other)
    assert stored(db)[1][columns.index("stages")] == {"n": 1, "text": "ü"}
    other.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_returning_spans_chunks_and_converts_the_returned_values(db: Database) -> None:
    """More rows than one statement may carry parameters for: the rows go in several
    multi-row statements, and every returned row comes back, typed."""
    keys = ("experiment_id", "arm", "candidate", "shadow", "slice", "hour", "metric", "label")
    rows = [{"experiment_id": 1, "arm": "a", "candidate": "c", "shadow": False, "slice": "all",
             "hour": T0 + timedelta(hours=i), "metric": "m", "label": "", "n": 1, "sum": 0.5,
             "sum_squares": 0.25} for i in range(40)]
    with db.session() as s:
        s.connection().connection.dbapi_connection.setlimit(
            sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 50)  # four rows of 11 columns a statement
        first = insert_rows(s, OnlineAggregate.__table__, rows, keys,
                            add=("n", "sum", "sum_squares"), returning=["hour", "shadow", "n"])
        again = insert_rows(s, OnlineAggregate.__table__, rows, keys,
                            add=("n", "sum", "sum_squares"), returning=["hour", "shadow", "n"])
    assert len(first) == len(again) == 40
    assert {r.hour.replace(tzinfo=UTC) for r in first} == {r["hour"] for r in rows}
    assert {type(r.shadow) for r in again} == {bool}
    assert {r.n for r in first} == {1} and {r.n for r in again} == {2}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_driver_error_is_sqlalchemys_and_nothing_is_stored(db: Database) -> None:
    good = {"event_id": "e1", "topic": "t", "key": "k", "payload": b"{}",
            "created_at": T0, "attempts": 0}
    with pytest.raises(IntegrityError), db.session() as s:
        insert_many(s, OutboxEvent.__table__, [good, {**good, "topic": None}])
    with db.reading() as s:
        assert s.scalar(select(OutboxEvent.id)) is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_batches_of_any_size_reuse_a_few_statement_texts(db: Database) -> None:
    """Each batch goes in power-of-two chunks, largest first: every row comes back once, and
    a hundred batch sizes need at most one statement text per power of two (SQLite keeps them
    prepared; a text per batch size would be parsed afresh every time)."""
    texts: list[str] = []
    n = 0
    with db.session() as s:
        s.connection().connection.dbapi_connection.set_trace_callback(texts.append)
        for size in range(1, 101):
            rows = [_prediction(i) for i in range(n, n + size)]
            n += size
            fresh = insert_rows(s, Prediction.__table__, rows, ["prediction_id"],
                                returning=["prediction_id"])
            assert [r.prediction_id for r in fresh] == [r["prediction_id"] for r in rows]
        s.connection().connection.dbapi_connection.set_trace_callback(None)
    inserts = [t for t in texts if t.startswith("INSERT")]
    widths = {t.count("), (") + 1 for t in inserts}
    assert widths == {1, 2, 4, 8, 16, 32, 64}
    assert len(inserts) == sum(bin(size).count("1") for size in range(1, 101))
    with db.reading() as s:
        assert s.scalar(select(func.count()).select_from(Prediction)) == n


def test_sqlite_datetimes_are_written_as_sqlalchemy_writes_them() -> None:
    """The faster conversion writes the very text of SQLAlchemy's own, so stored times sort
    and compare as before (naive and aware alike, the offset left out as SQLAlchemy does)."""
    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    from core.store.driver import _bind_conversion

    dialect = sqlite_dialect.dialect()
    impl = DateTime().dialect_impl(dialect)
    ours, theirs = _bind_conversion(impl, dialect), impl.bind_processor(dialect)
    values = [T0, T0.replace(tzinfo=None), datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59,
              999999), datetime(2026, 3, 1, 7, 5, 3, 40), T0.astimezone(timezone(timedelta(
                  hours=-5))), T0.date(), None]
    assert [ours(v) for v in values] == [theirs(v) for v in values]
    assert ours is not theirs
    # The text of the last time converted is reused for that very object only.
    later = T0 + timedelta(microseconds=1)
    again = [T0, T0, later, later, T0, None, T0.replace(tzinfo=None), T0]
    assert [ours(v) for v in again] == [theirs(v) for v in again]
