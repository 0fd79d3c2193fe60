"""A poison event cannot stop the stream, and the loops are supervised.

An event the worker cannot apply, for whatever reason, is parked (payload bounded) and the
stream goes on; an error that says the store is unreachable parks nothing; a loop that fails is
restarted with backoff, counted, logged and recorded in its heartbeat row.
"""

from __future__ import annotations

import logging
import threading

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core import events
from core.bus.base import Record
from core.bus.embedded import EmbeddedBus
from core.health import component_checks
from core.store.db import Database
from core.store.models import ComponentHeartbeat, ParkedEvent, ProcessedEvent
from core.store.service_models import ComponentStop
from core.stream import PARKED_PAYLOAD_BYTES, apply_records
from core.supervision import Supervisor
from evaluation.worker import GROUP_ID, apply_events, make_worker
from tests.support.flow import count_predictions, prediction_event, wait_until


def parked(db: Database) -> list[ParkedEvent]:
    with db.session() as s:
        return list(s.scalars(select(ParkedEvent).order_by(ParkedEvent.offset)))


def test_a_poison_event_is_parked_and_the_stream_goes_on(db: Database) -> None:
    """A lone surrogate passes JSON and the schema but no driver can store it; before, the
    worker thread died on the UnicodeEncodeError and evaluation stopped for good."""
    bus = EmbeddedBus(db, partitions=1)
    poison = prediction_event(99)
    poison["unit_id"] = "\ud800"
    junk = b"\xff" * 200_000  # not JSON, and too big to keep whole
    first = [events.encode(prediction_event(0)), events.encode(poison), junk,
             events.encode(prediction_event(1))]
    bus.producer().send_many(("t.predictions", "k", v) for v in first)
    worker = make_worker(db, bus, "t")
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        wait_until(lambda: count_predictions(db)[0] == 2, 60, "the good events around the poison")
        bus.producer().send_many(
            ("t.predictions", "k", events.encode(prediction_event(i))) for i in (2, 3))
        wait_until(lambda: count_predictions(db)[0] == 4, 60, "the stream to go on")
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    rows = parked(db)
    assert len(rows) == 2
    assert "surrogate" in rows[0].reason and rows[0].payload == first[1]
    assert rows[1].reason.startswith("not JSON")
    assert len(rows[1].payload) == PARKED_PAYLOAD_BYTES and rows[1].payload_size == 200_000


def test_any_handler_error_parks_only_that_event(db: Database) -> None:
    def fragile(session: Session, batch: list[dict]) -> None:
        if any(e["prediction_id"] == "r-2" for e in batch):
            raise KeyError("stages")  # a bug, not an AbvocError
        apply_events(session, batch)

    records = [Record("t.predictions", 0, i, "k", events.encode(prediction_event(i)))
               for i in range(5)]
    assert apply_records(db, GROUP_ID, records, fragile) == 4
    rows = parked(db)
    assert [r.offset for r in rows] == [2]
    assert rows[0].reason == "cannot apply: KeyError: 'stages'"


def test_an_unreachable_store_parks_nothing(db: Database) -> None:
    def store_gone(session: Session, batch: list[dict]) -> None:
        raise OperationalError("INSERT ...", {}, ConnectionError("server closed the connection"))

    records = [Record("t.predictions", 0, i, "k", events.encode(prediction_event(i)))
               for i in range(3)]
    with pytest.raises(OperationalError):
        apply_records(db, GROUP_ID, records, store_gone)
    assert parked(db) == []
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ProcessedEvent)) == 0


def test_a_failing_loop_is_restarted_counted_logged_and_recorded(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    def restarts() -> float:
        value = REGISTRY.get_sample_value(
            "abvoc_component_restarts_total", {"component": "probe", "error": "RuntimeError"})
        return value or 0.0

    before = restarts()
    stop = threading.Event()
    calls = {"step": 0, "reset": 0}
    seen: list[ComponentHeartbeat] = []

    def step() -> float:
        calls["step"] += 1
        if calls["step"] <= 3:
            raise RuntimeError(f"boom {calls['step']}")
        with db.session() as s:
            seen.extend(s.scalars(select(ComponentHeartbeat)))
        stop.set()
        return 0.5

    def reset() -> None:
        calls["reset"] += 1

    supervisor = Supervisor("probe", db, min_backoff_s=0.01, max_backoff_s=0.05)
    with caplog.at_level(logging.WARNING, logger="core.supervision"):
        supervisor.run(stop, step, reset)
    assert supervisor.restarts == 3 and restarts() - before == 3
    assert calls == {"step": 4, "reset": 4}  # after each failure, and once at the end
    assert [r.getMessage() for r in caplog.records
            if "probe failed" in r.getMessage()][-1].endswith("RuntimeError: boom 3")
    assert len(seen) == 1 and seen[0].restarts == 3 and seen[0].failing
    assert seen[0].last_error == "RuntimeError: boom 3"
    with db.session() as s:  # a clean stop deletes the row: stopped on purpose is not down
        rows = list(s.scalars(select(ComponentHeartbeat)))  # (to older nodes either), and
        stops = list(s.scalars(select(ComponentStop)))  # records the stop: not never started
    assert rows == [] and [(r.component, r.instance) for r in stops] == [
        ("probe", seen[0].instance)]
    assert component_checks(db) == {}
    assert component_checks(db, expected=["probe"])["probe"].startswith("down: stopped")


def test_a_value_the_database_refuses_is_parked(db: Database) -> None:
    """PostgreSQL refuses NUL in text (a DataError from the database, not an AbvocError);
    SQLite stores it. Either way the event is settled once and the batch's others apply."""
    nul = prediction_event(7)
    nul["output"] = "x\x00y"
    records = [Record("t.predictions", 0, i, "k", events.encode(e))
               for i, e in enumerate([prediction_event(6), nul, prediction_event(8)])]
    applied = apply_records(db, GROUP_ID, records, apply_events)
    rows = parked(db)
    if db.dialect == "postgresql":
        # The driver's words (a check for "NUL" once passed on the SQL text's "NULL").
        assert applied == 2 and len(rows) == 1 and \
            "\\u0000 cannot be converted to text" in rows[0].reason
    else:
        assert applied == 3 and rows == []
