"""insert_rows stores what SQLAlchemy's own execution stores, on both stores and on each of
PostgreSQL's two paths (one JSON document, or one array per column where JSON falls short)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Text, cast, event, select
from sqlalchemy.exc import IntegrityError

from core.store import pg_copy, schema, upsert
from core.store.db import Database
from core.store.models import OnlineAggregate, OutboxEvent, Prediction
from core.store.upsert import insert_many, insert_rows

T0 = datetime(2026, 11, 20, 8, tzinfo=UTC)
ODD_TEXT = 'a "quoted" {brace}, back\\slash, NULL, ü√, tab\there'


def _prediction(i: int, **change: object) -> dict:
    row = {"prediction_id": f"p{i:03d}", "event_id": f"e{i}", "experiment_id": 10**12 + i,
           "candidate": "c", "arm": None if i % 2 else "control", "shadow": i % 3 == 0,
           "unit_id": ODD_TEXT if i % 4 == 0 else None, "slice": "all", "input_hash": f"{i:x}",
           "output": ODD_TEXT, "output_type": None, "confidence": i / 7 if i % 5 else None,
           "latency_ms": 3 if i % 2 else 2.5e-7,
           "stages": {"z": [1, 2.5, None], "a": {"text": ODD_TEXT}, "n": i},
           "created_at": T0 + timedelta(microseconds=i)}
    return {**row, **change}


def _stored(db: Database) -> list[tuple]:
    table = Prediction.__table__
    with db.reading() as s:
        return [tuple(r) for r in s.execute(
            select(*table.c, cast(table.c.stages, Text)).order_by(table.c.prediction_id))]


def _as_sqlalchemy_stores(rows: list[dict], database_url: str, path: str,
                          request: pytest.FixtureRequest) -> list[tuple]:
    """The rows as SQLAlchemy's own execution stores them, in a second store of the same
    kind."""
    other = Database(database_url.replace("abvoc.db", "other.db") if path == "driver"
                     else request.getfixturevalue("postgres").create_database())
    schema.upgrade(other)
    with other.session() as s:
        s.execute(Prediction.__table__.insert(), rows)
    stored = _stored(other)
    other.dispose()
    return stored


# SQLite's driver path, PostgreSQL's JSON document, and its array fallback (forced).
PATHS = pytest.mark.parametrize(("database_url", "path"), [
    ("sqlite", "driver"), ("postgresql", "json"), ("postgresql", "arrays")],
    indirect=["database_url"])


def _force(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if path == "arrays":
        monkeypatch.setattr(upsert, "_json_document", lambda *_: None)


@PATHS
def test_rows_read_back_as_sqlalchemy_wrote_them(db: Database, path: str, database_url: str,
                                                 request: pytest.FixtureRequest,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _force(path, monkeypatch)
    rows = [_prediction(i) for i in range(40)]
    if path == "json":  # these rows do travel as one document
        assert upsert._json_document(Prediction.__table__, tuple(rows[0]), rows) is not None
    with db.session() as s:
        fresh = insert_rows(s, Prediction.__table__, rows[::2], ["prediction_id"],
                            returning=["prediction_id"])
        again = insert_rows(s, Prediction.__table__, rows, ["prediction_id"],
                            returning=["prediction_id"])
    assert [r.prediction_id for r in fresh] == [r["prediction_id"] for r in rows[::2]]
    assert [r.prediction_id for r in again] == [r["prediction_id"] for r in rows[1::2]]
    assert _stored(db) == _as_sqlalchemy_stores(rows, database_url, path, request)
    assert _stored(db)[0][-1] == '{"z":[1,2.5,null],"a":{"text":' + \
        '"a \\"quoted\\" {brace}, back\\\\slash, NULL, ü√, tab\\there"},"n":0}'


@PATHS
def test_add_sums_onto_existing_rows_and_bytes_go_in(
        db: Database, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The aggregates' path: ON CONFLICT adds the counts; rows with bytes (latency sketches:
    every byte value, empty, none) read back exactly, in JSON as bytea's hex text."""
    _force(path, monkeypatch)
    keys = ("experiment_id", "arm", "candidate", "shadow", "slice", "hour", "metric", "label")
    base = {"experiment_id": 1, "arm": "a", "candidate": "c", "shadow": False, "slice": "all",
            "hour": T0, "metric": "m", "label": ""}
    for n, total in ((1, 0.5), (2, 1.25)):
        with db.session() as s:
            insert_rows(s, OnlineAggregate.__table__,
                        [{**base, "n": n, "sum": total, "sum_squares": total ** 2}], keys,
                        add=("n", "sum", "sum_squares"))
    sketches = {"all-bytes": bytes(range(256)) + b"\\x00", "empty": b"", "none": None}
    rows = [{**base, "metric": "latency_ms", "label": label, "n": 1, "sum": 1.0,
             "sum_squares": 1.0, "sketch": sketch} for label, sketch in sketches.items()]
    if path == "json":
        assert upsert._json_document(OnlineAggregate.__table__, tuple(rows[0]), rows)
    with db.session() as s:
        insert_rows(s, OnlineAggregate.__table__, rows, keys)
    with db.reading() as s:
        got = {(r.metric, r.label): (r.n, r.sum, r.sum_squares, r.sketch)
               for r in s.scalars(select(OnlineAggregate))}
    assert got == {("m", ""): (3, 1.75, 0.25 + 1.5625, None),
                   **{("latency_ms", label): (1, 1.0, 1.0, sketch)
                      for label, sketch in sketches.items()}}


# insert_many: SQLite's driver path; on PostgreSQL binary COPY, or for a few rows the INSERT
# (forced here for any size) on each of its two paths.
MANY_PATHS = pytest.mark.parametrize(("database_url", "path"), [
    ("sqlite", "driver"), ("postgresql", "copy"), ("postgresql", "json"),
    ("postgresql", "arrays")], indirect=["database_url"])


@MANY_PATHS
def test_insert_many_stores_every_row_or_none(db: Database, path: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox's plain INSERT: payload bytes, text and order as given; a row that breaks a
    constraint stores nothing of its batch (no ON CONFLICT skips it), and the error is
    SQLAlchemy's, on every path."""
    _force(path, monkeypatch)
    if path in ("json", "arrays"):
        monkeypatch.setattr(pg_copy, "MIN_ROWS", 10**9)
    statements: list[str] = []
    if path != "driver":
        event.listen(db.engine, "before_cursor_execute",
                     lambda _c, _cur, sql, *_: statements.append(sql))
    rows = [{"event_id": f"e{i}", "topic": ODD_TEXT, "key": f"{ODD_TEXT}{i}",
             "payload": bytes(range(i, 256)), "created_at": T0 + timedelta(microseconds=i),
             "attempts": 0} for i in range(30)]
    with db.session() as s:
        insert_many(s, OutboxEvent.__table__, rows)
    if path == "copy":  # COPY runs on the driver's cursor: SQLAlchemy saw no INSERT
        assert not [sql for sql in statements if sql.startswith("INSERT INTO outbox")]
    elif path != "driver":
        assert [sql for sql in statements if sql.startswith("INSERT INTO outbox")]
    clash = [{**r, "event_id": f"new{i}"} for i, r in enumerate(rows[:9])] + [rows[1]]
    with pytest.raises(IntegrityError), db.session() as s:
        insert_many(s, OutboxEvent.__table__, clash)
    with db.reading() as s:
        got = [(r.event_id, r.topic, r.key, r.payload, r.created_at.replace(tzinfo=UTC))
               for r in s.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]
    assert got == [(r["event_id"], r["topic"], r["key"], r["payload"], r["created_at"])
                   for r in rows]


@MANY_PATHS
def test_insert_many_writes_json_as_sqlalchemy_does(db: Database, path: str, database_url: str,
                                                    request: pytest.FixtureRequest,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's fresh predictions: every column type, JSON stages included, reads back as
    SQLAlchemy's own execution wrote it (the JSON text too), COPY or not."""
    _force(path, monkeypatch)
    if path in ("json", "arrays"):
        monkeypatch.setattr(pg_copy, "MIN_ROWS", 10**9)
    rows = [_prediction(i) for i in range(30)]
    with db.session() as s:
        if path == "copy":
            assert pg_copy.copy_rows(s, Prediction.__table__, rows)
        else:
            insert_many(s, Prediction.__table__, rows)
    assert _stored(db) == _as_sqlalchemy_stores(rows, database_url, path, request)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_copy_leaves_json_null_and_tiny_batches_to_the_insert(db: Database) -> None:
    """A JSON column's None (JSON null to SQLAlchemy, SQL NULL to COPY) or a batch of a row or
    two: the INSERT."""
    with db.session() as s:
        assert not pg_copy.copy_rows(s, Prediction.__table__,
                                     [_prediction(i, stages=None) for i in range(20)])
        assert not pg_copy.copy_rows(s, OutboxEvent.__table__, [
            {"event_id": "e", "topic": "t", "key": "k", "payload": b"", "created_at": T0,
             "attempts": 0}])
        assert s.scalar(select(OutboxEvent.id)) is None
        assert s.scalar(select(Prediction.prediction_id)) is None


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_what_json_cannot_carry_exactly_goes_as_arrays(db: Database) -> None:
    """Not a number (JSON has none: orjson would write null) and values orjson refuses."""
    table = Prediction.__table__
    nan = _prediction(1, confidence=float("nan"))
    big = _prediction(2, stages={"big": 10**30})
    plain = [_prediction(3)]
    assert upsert._json_document(table, tuple(nan), [nan]) is None
    assert upsert._json_document(table, tuple(big), [big]) is None
    assert upsert._json_document(table, tuple(plain[0]), plain) is not None
    with db.session() as s:
        for row in (nan, big, *plain):
            insert_rows(s, table, [row], ["prediction_id"])
    with db.reading() as s:
        got = dict(s.execute(select(Prediction.prediction_id, Prediction.confidence)).all())
        stages = s.scalar(select(Prediction.stages).where(Prediction.prediction_id == "p002"))
    assert math.isnan(got["p001"]) and got["p003"] == 3 / 7
    assert stages == {"big": 10**30}


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_in_lists_match_exactly_the_values_given(db: Database) -> None:
    """``IN`` lists (one JSON array on PostgreSQL): odd text matches as it is, a value longer
    than the column is not cut to a prefix that matches, and integers compare as integers."""
    ids = [ODD_TEXT, "p" * 64, 'q"\\', "ü√"]
    with db.session() as s:
        insert_rows(s, Prediction.__table__,
                    [_prediction(i, prediction_id=pid) for i, pid in enumerate(ids)],
                    ["prediction_id"])
    wanted = [ODD_TEXT, "p" * 64 + "x", 'q"\\', "absent"]
    by_param = select(Prediction.prediction_id).where(
        upsert.in_param(Prediction.prediction_id, "ids", db.dialect))
    with db.reading() as s:
        got = s.scalars(select(Prediction.prediction_id).where(
            upsert.in_values(s, Prediction.prediction_id, wanted))).all()
        again = s.scalars(by_param, {"ids": wanted}).all()
        numbers = s.scalars(select(Prediction.experiment_id).where(
            upsert.in_values(s, Prediction.experiment_id, [10**12 + 1, 10**12 + 3, 7]))).all()
    assert sorted(got) == sorted(again) == sorted([ODD_TEXT, 'q"\\'])
    assert sorted(numbers) == [10**12 + 1, 10**12 + 3]
