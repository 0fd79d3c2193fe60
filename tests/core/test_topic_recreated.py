"""A Kafka topic deleted and created again while traffic flows is a new log under an old name.

Found on a real broker: running workers never read the new topic (librdkafka kept its old
positions, or waited minutes for a metadata refresh), and a batch read before the deletion but
committed after it left an offset that made the next member skip the new topic's first records.
These tests delete a topic on a real broker, recreate it, produce fewer records than the old
committed offset and then more (or more at once, before a running worker reads any), and check
that every record of the new topic is read from its first offset (by a running worker and by a
fresh member), and that the stale offset and the recreated topic are logged.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from sqlalchemy.orm import Session

from core import events
from core.bus import kafka as kafka_module
from core.bus.base import BusUnavailable, Consumer, Record, TopicPartition
from core.bus.kafka import KafkaBus
from core.store.db import Database
from core.stream import StreamConsumer, next_offsets
from tests.support.flow import prediction_event, wait_until
from tests.support.kafka import KafkaBroker


def _send(bus: KafkaBus, topic: str, run: str, lo: int, hi: int) -> list[str]:
    """Produce prediction events run-lo .. run-(hi-1), keyed by prediction id; their ids."""
    made = [prediction_event(i, run) for i in range(lo, hi)]
    bus.producer().send_many((topic, e["prediction_id"], events.encode(e)) for e in made)
    return [e["event_id"] for e in made]


def _read(consumer: Consumer, n: int, timeout_s: float = 60) -> list[Record]:
    got: list[Record] = []
    wait_until(lambda: bool(got.extend(consumer.poll(300, n - len(got)))) or len(got) >= n,
               timeout_s, f"{n} records")
    return got


def _recreate(bus: KafkaBus, topic: str) -> None:
    """Delete the topic, wait until the broker no longer lists it, and create it again."""
    admin = AdminClient({"bootstrap.servers": ",".join(bus.brokers)})
    admin.delete_topics([topic])[topic].result()
    wait_until(lambda: topic not in admin.list_topics(timeout=5).topics, 30, "the deletion")
    bus.ensure_topics([topic])


def _values(records: list[Record]) -> list[str]:
    return [events.decode(r.value)["prediction_id"] for r in records]


def test_an_offset_committed_for_the_deleted_topic_does_not_skip_the_new_one(
        kafka: KafkaBroker, caplog: pytest.LogCaptureFixture) -> None:
    bus = KafkaBus([kafka.bootstrap], partitions=1)
    topic, group = f"recreated-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    bus.ensure_topics([topic])
    _send(bus, topic, "old", 0, 50)
    running = bus.consumer(group, [topic])
    try:
        batch = _read(running, 50)
        running.commit({TopicPartition(topic, 0): 30})  # some consumed and committed
        _recreate(bus, topic)
        _send(bus, topic, "new", 0, 10)  # fewer records than the old committed offset
        # A batch read before the deletion and committed after it (the worker was busy).
        running.commit(next_offsets(batch))
        _send(bus, topic, "new", 10, 70)  # then more
    finally:
        running.close()
    fresh = bus.consumer(group, [topic])
    try:
        with caplog.at_level(logging.INFO, logger="core.bus.kafka"):
            got = _read(fresh, 70)
        got += fresh.poll(2000, 100)  # nothing more: each record once
        assert _values(got) == [f"new-{i}" for i in range(70)]
        assert got[0].offset == 0
        stale = [r.getMessage() for r in caplog.records if "is stale" in r.getMessage()]
        assert len(stale) == 1, stale
        assert f"offset 50 committed for {topic} [0] is stale (committed for topic id" in stale[0]
        fresh.commit()
    finally:
        fresh.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_running_worker_reads_a_recreated_topic_from_its_first_record(
        kafka: KafkaBroker, db: Database, caplog: pytest.LogCaptureFixture) -> None:
    bus = KafkaBus([kafka.bootstrap], partitions=2)
    topic, group = f"recreated-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    bus.ensure_topics([topic])
    applied: Counter[str] = Counter()

    def handler(_session: Session, batch: list[dict]) -> None:
        applied.update(e["event_id"] for e in batch)

    old = _send(bus, topic, "old", 0, 50)
    worker = StreamConsumer(db, bus, group, [topic], handler, read_ahead=False)
    try:
        wait_until(lambda: worker.step(300) >= 0 and len(applied) == 50, 60, "the old events")
        assert set(applied) == set(old)
        _recreate(bus, topic)
        for _ in range(5):  # the worker runs on while the topic is gone
            worker.step(300)
        with caplog.at_level(logging.INFO, logger="core.bus.kafka"):
            # The relay's backlog, published in one go: more records than the old offsets.
            new = _send(bus, topic, "new", 0, 70)
            wait_until(lambda: worker.step(300) >= 0 and len(applied) == 120, 60,
                       f"the new events (applied {len(applied) - 50} of 70)")
            # librdkafka may have read on from its old positions (skipping) or have reset them:
            # either way the worker notices the new topic id and a new member takes over.
            wait_until(lambda: worker.step(300) >= 0 and any(
                f"topic {topic!r} was deleted and created again" in r.getMessage()
                for r in caplog.records), 30, "the worker to notice the new topic")
            for _ in range(5):
                worker.step(300)
        assert set(applied) - set(old) == set(new)
        assert set(applied.values()) == {1}  # each event applied once
    finally:
        worker.close()
    fresh = bus.consumer(group, [topic])  # the worker committed every new record
    try:
        extra: list[Record] = []
        wait_until(lambda: bool(extra.extend(fresh.poll(300, 100))) or
                   len(fresh.assignment()) == 2, 60, "an assignment")
        extra += fresh.poll(2000, 100)
        assert _values(extra) == []
    finally:
        fresh.close()


def test_a_delivery_to_a_topic_that_does_not_exist_names_the_topic(
        kafka: KafkaBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the broker does not create topics on first use, a record for a deleted topic
    times out: the error says which topic is missing, not only that time ran out."""
    plain = kafka_module._config

    def no_auto_create(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**plain(*args, **kwargs), "allow.auto.create.topics": False}

    monkeypatch.setattr(kafka_module, "_config", no_auto_create)
    bus = KafkaBus([kafka.bootstrap], partitions=1, delivery_timeout_s=3)
    topic = f"missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(BusUnavailable, match=f"topic '{topic}' does not exist"):
        bus.producer().send_many([(topic, "k", b"v")] * 3)
