"""Pruning with the real relay and worker on the embedded log: an event id whose event may still
come again is kept, so a republished copy read after a prune is not counted twice."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from core import events
from core.bus.embedded import EmbeddedBus
from core.outbox import OutboxRelay, add_events
from core.store.db import Database, utcnow
from core.store.models import BusRecord, OutboxEvent, Prediction, ProcessedEvent
from core.store.retention import prune
from evaluation.worker import make_worker
from tests.evaluation.helpers import aggregate_totals, prediction

PREFIX = "ret"
WEEK = timedelta(days=7)


def _count(db: Database, model: type) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _drain(worker) -> None:  # noqa: ANN001
    while worker.step(timeout_ms=300):
        pass


def test_a_copy_republished_before_a_prune_is_absorbed(db: Database) -> None:
    bus = EmbeddedBus(db, 1)
    bus.ensure_topics(events.topics(PREFIX))
    with db.session() as s:
        add_events(s, [prediction("p1")], PREFIX)
    relay = OutboxRelay(db, bus)
    assert relay.relay_once() == 1
    worker = make_worker(db, bus, PREFIX)
    try:
        _drain(worker)
        assert _count(db, Prediction) == 1 and _count(db, ProcessedEvent) == 1
        # The relay published but lost its mark, and its claim expired: the row is unsent and
        # goes out a second time.
        with db.session() as s:
            s.execute(update(OutboxEvent).values(sent_at=None, claimed_by=None,
                                                 claimed_until=None))
        assert relay.relay_once() == 1
        assert _count(db, BusRecord) == 2

        later = utcnow() + timedelta(days=8)  # everything is past the retention now
        pruned = prune(db, WEEK, now=later)
        # The first copy was read: it goes. The second is still unread: its event id (and its
        # outbox row) must stay.
        assert (pruned.bus_log, pruned.processed_events, pruned.outbox) == (1, 0, 0)
        assert _count(db, ProcessedEvent) == 1

        _drain(worker)
        assert _count(db, Prediction) == 1
        assert aggregate_totals(db)["predictions"] == 1  # counted once

        # Now every copy has been read: the outbox row and the id go, and the log but its
        # newest record, which stays whatever its age (offsets are record ids, see
        # core.store.retention): read by the group, it is never delivered to it again.
        pruned = prune(db, WEEK, now=later)
        assert (pruned.bus_log, pruned.outbox, pruned.processed_events) == (0, 1, 1)
        assert _count(db, BusRecord) == 1
        assert _count(db, Prediction) == 1  # the evaluation keeps its data
    finally:
        worker.close()
