"""A consumer's lag is the end offsets minus its position, not the age of what it happened to
read: a consumer whose polls come back empty while records pile up must show lag, and /readyz
must flag it (before, an empty poll set the heartbeat's lag to 0)."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from core import events
from core.bus.base import PartitionLag, Record, TopicPartition
from core.bus.embedded import EmbeddedBus
from core.bus.kafka import KafkaBus
from core.consumer_lag import LagTracker
from core.health import component_checks
from core.store.db import Database
from evaluation.worker import GROUP_ID, make_worker
from tests.support.flow import prediction_event, wait_until


def _send(bus: EmbeddedBus, lo: int, hi: int) -> None:
    bus.producer().send_many(("t.predictions", "k", events.encode(prediction_event(i)))
                             for i in range(lo, hi))


def test_a_stalled_consumer_shows_lag_and_readiness_flags_it(db: Database) -> None:
    bus = EmbeddedBus(db, partitions=1)
    _send(bus, 0, 3)
    worker = make_worker(db, bus, "t")
    clock = [1000.0]
    worker.lag = LagTracker(GROUP_ID, every_s=0, clock=lambda: clock[0])
    try:
        assert worker.step(timeout_ms=200) == 3
        assert worker.lag.records_behind == 0 and worker.lag_s is not None
        _send(bus, 3, 7)

        def stalled(**_: object) -> list[Record]:
            return []  # fetches stopped (e.g. the topic was recreated under the consumer)

        worker._consumer.poll = stalled  # type: ignore[union-attr,method-assign]
        assert worker.step() == 0
        assert worker.lag.records_behind >= 4  # ids span the 4 records waiting
        clock[0] += 200
        assert worker.step() == 0
        assert worker.lag_s is not None and worker.lag_s >= 200
        tp = TopicPartition("t.predictions", 0)
        assert REGISTRY.get_sample_value("abvoc_consumer_lag_records", {
            "group": GROUP_ID, "topic": tp.topic, "partition": "0"}) >= 4
        heartbeat = worker.supervisor.heartbeat
        assert heartbeat is not None
        heartbeat.beat(lag_s=worker.lag_s)
        assert component_checks(db)["worker"].startswith("lagging: 200s behind")
    finally:
        worker.close()


def test_a_consumer_that_reads_again_is_caught_up(db: Database) -> None:
    bus = EmbeddedBus(db, partitions=1)
    _send(bus, 0, 5)
    worker = make_worker(db, bus, "t")
    worker.lag = LagTracker(GROUP_ID, every_s=0)
    try:
        worker.step(timeout_ms=200)
        assert worker.lag.records_behind == 0 and worker.lag.stalled_s() == 0
    finally:
        worker.close()


def test_kafka_lag_is_the_high_watermark_minus_the_position(kafka) -> None:  # noqa: ANN001
    bus = KafkaBus([kafka.bootstrap], partitions=1)
    topic = f"lag-{uuid.uuid4().hex[:8]}"
    bus.ensure_topics([topic])
    bus.producer().send_many((topic, "k", f"v{i}".encode()) for i in range(10))
    consumer = bus.consumer(f"g-{topic}", [topic])
    try:
        got: list[Record] = []
        wait_until(lambda: bool(got.extend(consumer.poll(500, max_records=4 - len(got)))
                                or len(got) >= 4), 60, "the first records")
        assert consumer.lag() == {TopicPartition(topic, 0): PartitionLag(4, 10)}
        consumer.commit()
    finally:
        consumer.close()
    again = bus.consumer(f"g-{topic}", [topic])
    try:  # before its first record, a new member stands at the committed offset
        wait_until(lambda: bool(again.assignment()) or bool(again.poll(200, 0)), 60,
                   "an assignment")
        assert again.lag()[TopicPartition(topic, 0)].behind == 6
    finally:
        again.close()
