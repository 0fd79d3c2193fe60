"""Outbox relay and the consume loop: nothing lost, nothing applied twice, bad events parked."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from core import events
from core.bus.base import BusUnavailable, Record, TopicPartition
from core.bus.embedded import EmbeddedBus
from core.bus.kafka import KafkaBus
from core.outbox import OutboxRelay, add_event, pending_count
from core.store.db import Database
from core.store.models import OutboxEvent, ParkedEvent, ProcessedEvent
from core.stream import StreamConsumer, apply_records, next_offsets
from evaluation.worker import apply_events, make_worker
from tests.support.flow import count_predictions, joined, prediction_event, wait_until, write_outbox
from tests.support.ports import free_port

PREFIX = "t"


def test_event_and_write_commit_together(db: Database) -> None:
    try:
        with db.session() as s:
            add_event(s, prediction_event(1), PREFIX)
            raise RuntimeError("request failed after queuing its event")
    except RuntimeError:
        pass
    assert pending_count(db) == 0  # nothing partial is stored


def test_relay_and_worker_move_every_event_once(db: Database) -> None:
    bus = EmbeddedBus(db, partitions=3, heartbeat_s=0.2)
    write_outbox(db, 250, PREFIX)
    relay = OutboxRelay(db, bus, batch_size=100)
    while relay.relay_once():
        pass
    assert pending_count(db) == 0
    worker = make_worker(db, bus, PREFIX)
    while worker.step(timeout_ms=200):
        pass
    assert count_predictions(db) == (250, 250)
    assert worker.applied == 250


def test_replayed_batch_is_not_applied_twice(db: Database) -> None:
    """A consumer that crashes after applying but before committing offsets sees the batch
    again; the processed-event guard makes the replay a no-op."""
    bus = EmbeddedBus(db, partitions=1)
    producer = bus.producer()
    producer.send_many(
        ("t.predictions", f"p{i}", events.encode(prediction_event(i))) for i in range(40)
    )
    consumer = bus.consumer("evaluation", ["t.predictions"])
    records = consumer.poll(timeout_ms=500)
    assert apply_records(db, "evaluation", records, apply_events) == 40
    consumer.close()  # crash: offsets never committed
    again = bus.consumer("evaluation", ["t.predictions"]).poll(timeout_ms=500)
    assert [r.offset for r in again] == [r.offset for r in records]
    assert apply_records(db, "evaluation", again, apply_events) == 0
    assert count_predictions(db) == (40, 40)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ProcessedEvent)) == 40


def test_invalid_events_from_outside_are_parked_not_dropped(db: Database) -> None:
    bus = EmbeddedBus(db, partitions=1)
    good = [events.encode(prediction_event(i)) for i in range(3)]
    bad = [b"not json", b'{"event_type": "PredictionMade", "schema_version": 1}']
    bus.producer().send_many(("t.predictions", "k", v) for v in [good[0], *bad, *good[1:]])
    worker = StreamConsumer(db, bus, "evaluation", ["t.predictions"], apply_events)
    worker.step(timeout_ms=500)
    assert count_predictions(db) == (3, 3)
    with db.session() as s:
        reasons = list(s.scalars(select(ParkedEvent.reason).order_by(ParkedEvent.offset)))
    assert len(reasons) == 2
    assert reasons[0].startswith("not JSON") and "required property" in reasons[1]


def test_broker_down_keeps_events_in_outbox_until_it_returns(db: Database, kafka) -> None:  # noqa: ANN001
    """With the broker unreachable the service keeps accepting; the relay delivers later."""
    dead = KafkaBus([f"127.0.0.1:{free_port()}"], delivery_timeout_s=2)
    write_outbox(db, 30, PREFIX)
    relay = OutboxRelay(db, dead)
    try:
        relay.relay_once()
        raise AssertionError("relay should report the bus unavailable")
    except BusUnavailable:
        pass
    write_outbox(db, 20, PREFIX, start=30)  # still accepting
    assert pending_count(db) == 50
    with db.session() as s:
        assert s.scalar(select(func.max(OutboxEvent.attempts))) == 1

    live = KafkaBus([kafka.bootstrap])
    prefix = f"down{free_port()}"
    live.ensure_topics(events.topics(prefix))
    # Re-route the waiting rows to this test's own topics, as if configured that way.
    with db.session() as s:
        s.execute(OutboxEvent.__table__.update().values(topic=prefix + ".predictions"))
    stop = threading.Event()
    thread = threading.Thread(target=OutboxRelay(db, live).run, args=(stop,), name="relay",
                              daemon=True)
    thread.start()
    wait_until(lambda: pending_count(db) == 0, 60, "outbox to drain")
    stop.set()
    joined([thread])
    worker = make_worker(db, live, prefix)
    wait_until(lambda: worker.step() >= 0 and count_predictions(db)[0] == 50, 90, "50 rows")
    worker.close()
    assert count_predictions(db) == (50, 50)


def test_the_offsets_to_commit_follow_the_highest_record_of_each_partition() -> None:
    records = [Record("a", 0, 5, None, b""), Record("a", 1, 2, None, b""),
               Record("b", 0, 9, None, b""), Record("a", 0, 3, None, b""),
               Record("a", 0, 7, None, b"")]
    assert next_offsets(records) == {TopicPartition("a", 0): 8, TopicPartition("a", 1): 3,
                                     TopicPartition("b", 0): 10}
    assert next_offsets([]) == {}


def _backlog(db: Database, n: int) -> EmbeddedBus:
    bus = EmbeddedBus(db, partitions=1)
    write_outbox(db, n, PREFIX)
    relay = OutboxRelay(db, bus)
    while relay.relay_once():
        pass
    return bus


def test_a_worker_reading_ahead_applies_every_event_once_in_order(db: Database) -> None:
    """On either store when asked (by default on PostgreSQL only): while a batch is applied,
    the next one is read on the helper thread; every event is applied once."""
    worker = make_worker(db, _backlog(db, 250), PREFIX, max_records=50)
    worker.read_ahead = True
    assert worker.step(timeout_ms=500) == 50
    ahead = worker._ahead
    assert ahead is not None  # the second batch, read while the first was applied
    offsets = [r.offset for r in ahead.result().records]
    assert len(offsets) == 50 and offsets == sorted(offsets)
    while worker.step(timeout_ms=200):
        pass
    worker.close()
    assert count_predictions(db) == (250, 250)
    assert worker.applied == 250
    assert make_worker(db, EmbeddedBus(db, partitions=1), PREFIX).read_ahead is (
        db.dialect == "postgresql")


def test_a_batch_read_ahead_is_dropped_on_close_and_read_again(db: Database) -> None:
    """The supervisor closes the consumer on any error: the batch read ahead was not
    committed, so the next round reads it again from the committed offsets."""
    bus = _backlog(db, 120)
    worker = make_worker(db, bus, PREFIX, max_records=50)
    worker.read_ahead = True
    assert worker.step(timeout_ms=500) == 50
    assert worker._ahead is not None
    worker.close()
    assert worker._ahead is None
    while worker.step(timeout_ms=200):
        pass
    worker.close()
    assert count_predictions(db) == (120, 120)
    assert worker.applied == 120
