"""One contract, two transports: the embedded log (on SQLite and PostgreSQL) and real Kafka."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from core.bus import Bus, Consumer, Record, TopicPartition
from core.bus.embedded import EmbeddedBus
from core.bus.kafka import KafkaBus
from core.store import schema
from core.store.db import Database

BusFactory = Callable[[], Bus]


@pytest.fixture(params=["embedded-sqlite", "embedded-postgresql", "kafka"])
def make_bus(request: pytest.FixtureRequest, tmp_path) -> Iterator[BusFactory]:  # noqa: ANN001
    """A factory of bus handles onto the same underlying log (as separate processes would have)."""
    if request.param == "kafka":
        broker = request.getfixturevalue("kafka")
        yield lambda: KafkaBus([broker.bootstrap], partitions=3)
        return
    if request.param == "embedded-sqlite":
        url = f"sqlite:///{tmp_path / 'bus.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(migrated=True)
    databases: list[Database] = [Database(url)]
    schema.upgrade(databases[0])

    def factory() -> Bus:
        databases.append(Database(url))
        return EmbeddedBus(databases[-1], partitions=3, heartbeat_s=0.2, session_timeout_s=3)

    yield factory
    for database in databases:
        database.dispose()


@pytest.fixture
def topic() -> str:
    return f"contract.{uuid.uuid4().hex[:10]}"


def drain(consumer: Consumer, expected: int, timeout_s: float = 60) -> list[Record]:
    """Poll until `expected` records arrived (or time runs out), then a little longer for extras."""
    out: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expected and time.monotonic() < deadline:
        out += consumer.poll(timeout_ms=500)
    out += consumer.poll(timeout_ms=300)
    return out


def produce(bus: Bus, topic: str, n: int, keys: int = 7) -> list[tuple[str, bytes]]:
    sent = [(f"key-{i % keys}", f"value-{i}".encode()) for i in range(n)]
    producer = bus.producer()
    producer.send_many((topic, k, v) for k, v in sent)
    producer.close()
    return sent


def test_every_record_arrives_in_key_order(make_bus: BusFactory, topic: str) -> None:
    bus = make_bus()
    bus.ensure_topics([topic])
    sent = produce(bus, topic, 300)
    consumer = bus.consumer("g1", [topic])
    got = drain(consumer, 300)
    consumer.close()
    assert sorted(r.value for r in got) == sorted(v for _, v in sent)
    for key in {k for k, _ in sent}:
        want = [v for k, v in sent if k == key]
        assert [r.value for r in got if r.key == key] == want
        assert len({r.partition for r in got if r.key == key}) == 1


def test_uncommitted_records_are_read_again_committed_ones_are_not(
    make_bus: BusFactory, topic: str
) -> None:
    bus = make_bus()
    bus.ensure_topics([topic])
    produce(bus, topic, 50)
    first = bus.consumer("g", [topic])
    assert len(drain(first, 50)) == 50
    first.close()  # closed without committing: the group must start over

    second = make_bus().consumer("g", [topic])
    records = drain(second, 50)
    assert len(records) == 50
    half = sorted(records, key=lambda r: (r.partition, r.offset))
    committed: dict[TopicPartition, int] = {}
    for r in half:
        committed[r.tp] = r.offset + 1
    second.commit(committed)
    second.close()

    produce(bus, topic, 20)
    third = make_bus().consumer("g", [topic])
    rest = drain(third, 20)
    third.close()
    assert sorted(r.value for r in rest) == sorted(f"value-{i}".encode() for i in range(20))


def test_groups_are_independent(make_bus: BusFactory, topic: str) -> None:
    bus = make_bus()
    bus.ensure_topics([topic])
    produce(bus, topic, 40)
    for group in ("a", "b"):
        consumer = make_bus().consumer(group, [topic])
        assert len(drain(consumer, 40)) == 40
        consumer.commit()
        consumer.close()


def test_members_of_a_group_share_the_partitions(make_bus: BusFactory, topic: str) -> None:
    bus = make_bus()
    bus.ensure_topics([topic])
    one, two = make_bus().consumer("shared", [topic]), make_bus().consumer("shared", [topic])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        one.poll(timeout_ms=200)
        two.poll(timeout_ms=200)
        a, b = one.assignment(), two.assignment()
        if a and b and not a & b and len(a | b) == 3:
            break
    assert a and b and not a & b, (a, b)
    assert a | b == {TopicPartition(topic, p) for p in range(3)}

    produce(bus, topic, 90, keys=30)
    got: list[Record] = []
    deadline = time.monotonic() + 60
    while len(got) < 90 and time.monotonic() < deadline:
        for consumer in (one, two):
            records = consumer.poll(timeout_ms=200)
            assert {r.tp for r in records} <= consumer.assignment()
            got += records
            consumer.commit()
    one.close()
    two.close()
    assert sorted(r.value for r in got) == sorted(f"value-{i}".encode() for i in range(90))


def test_records_survive_a_new_handle(make_bus: BusFactory, topic: str) -> None:
    """Durability: a fresh handle (as after a process restart) sees what was produced."""
    bus = make_bus()
    bus.ensure_topics([topic])
    produce(bus, topic, 25)
    bus.close()
    consumer = make_bus().consumer("late", [topic])
    assert len(drain(consumer, 25)) == 25
    consumer.close()


def test_a_committed_offset_never_moves_backwards(make_bus: BusFactory, topic: str) -> None:
    """A late commit of a lower offset (a slow member, a replayed batch) leaves the group's
    position where it was: nothing already applied is read again, nothing is skipped."""
    bus = make_bus()
    bus.ensure_topics([topic])
    produce(bus, topic, 30, keys=1)  # one key: one partition
    first = bus.consumer("mono", [topic])
    records = drain(first, 30)
    assert len(records) == 30
    tp = records[0].tp
    first.commit({tp: records[-1].offset + 1})
    first.commit({tp: records[4].offset + 1})  # late and lower
    first.close()
    producer = bus.producer()
    producer.send_many((topic, "key-0", f"after-{i}".encode()) for i in range(5))
    producer.close()
    second = make_bus().consumer("mono", [topic])
    rest = drain(second, 5)
    second.close()
    assert sorted(r.value for r in rest) == sorted(f"after-{i}".encode() for i in range(5))
