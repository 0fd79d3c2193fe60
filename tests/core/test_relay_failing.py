"""A relay that cannot publish says so: in /readyz (core.health), with a growing backoff, and
with the topic it was publishing to; after a failure it makes sure its topics exist again.

Before, a relay that found another relay holding the lock counted that round as a success: relays
taking turns at a failing bus each cleared their own failure between tries, /readyz said
`relay: ok`, and the backoff never grew. A deleted topic was never created again, and the
client's "Message timed out" never said which topic."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator

import pytest
from confluent_kafka.admin import AdminClient
from sqlalchemy import select

from core import events
from core.bus.base import Bus, BusUnavailable, Consumer, Producer
from core.bus.kafka import KafkaBus
from core.health import component_checks
from core.outbox import OutboxRelay, pending_count
from core.store.db import Database
from core.store.models import ComponentHeartbeat, OutboxEvent
from core.supervision import STANDBY, Supervisor
from tests.support.flow import wait_until, write_outbox
from tests.support.kafka import KafkaBroker

PREFIX = "t"
TIMED_OUT = "Kafka delivery failed: Local: Message timed out (no error reported by the client)"


class _TimingOut(Producer):
    def __init__(self, bus: FlakyBus) -> None:
        self.bus = bus

    def send_many(self, records: Iterable[tuple[str, str | None, bytes]]) -> None:
        list(records)
        if self.bus.failures_left:
            self.bus.failures_left -= 1
            time.sleep(self.bus.send_s)
            raise BusUnavailable(TIMED_OUT)
        self.bus.sent += 1


class FlakyBus(Bus):
    """A bus whose deliveries time out `failures_left` times, recording `ensure_topics`."""

    def __init__(self, failures: int, send_s: float = 0.0) -> None:
        self.failures_left = failures
        self.send_s = send_s
        self.sent = 0
        self.ensured: list[list[str]] = []

    def ensure_topics(self, topics: Iterable[str]) -> None:
        self.ensured.append(sorted(topics))

    def producer(self) -> Producer:
        return _TimingOut(self)

    def consumer(self, group_id: str, topics: Iterable[str]) -> Consumer:
        raise NotImplementedError

    def check(self, timeout_s: float = 5.0) -> None:
        """Reachable: only deliveries fail."""


class _Recording(threading.Event):
    """A stop event that records each wait and returns at once."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return self.is_set()


def test_a_standby_round_keeps_the_failure_and_the_backoff(db: Database) -> None:
    rounds = iter([RuntimeError("bus"), STANDBY, STANDBY, RuntimeError("bus"), STANDBY,
                   RuntimeError("bus"), STANDBY])
    stop = _Recording()
    sup = Supervisor("relay", db, min_backoff_s=0.2, max_backoff_s=10, beat_interval_s=0)
    rows_failing: list[bool] = []  # the heartbeat row as each round after the first finds it
    calls = 0

    def step() -> object:
        nonlocal calls
        calls += 1
        if calls > 1:
            with db.reading() as s:
                rows_failing.append(s.scalar(select(ComponentHeartbeat.failing)))
        item = next(rounds, None)
        if item is None or calls > 20:
            stop.set()
            return None
        if isinstance(item, Exception):
            raise item
        return item

    sup.run(stop, step, lambda: None)
    assert rows_failing == [True] * 7  # failing from the first failure on, standby or not
    backoffs = [w for w in stop.waits if w >= 0.1]
    assert len(backoffs) == 3
    for nominal, waited in zip((0.2, 0.4, 0.8), backoffs, strict=True):
        assert 0.75 * nominal <= waited <= 1.25 * nominal, backoffs


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
def test_relays_taking_turns_at_a_failing_bus_show_failing(db: Database) -> None:
    write_outbox(db, 20, PREFIX)
    bus = FlakyBus(failures=10**6, send_s=0.4)
    relays = [OutboxRelay(db, bus, batch_size=50) for _ in range(2)]
    for relay in relays:
        relay.supervisor.min_backoff_s = 0.05
    stop = threading.Event()
    threads = [threading.Thread(target=r.run, args=(stop,), kwargs={"max_backoff_s": 1.0})
               for r in relays]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: all(r.supervisor.restarts for r in relays), 30,
                   "both relays to fail once")
        checks = []
        for _ in range(25):
            checks.append(component_checks(db)["relay"])
            time.sleep(0.1)
        assert all(c.startswith("failing: 2 of 2") for c in checks), checks
        assert TIMED_OUT in checks[-1] and f"{PREFIX}.predictions" in checks[-1]
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


def test_after_a_failure_the_relay_ensures_its_topics_and_names_them(db: Database) -> None:
    write_outbox(db, 5, PREFIX)
    bus = FlakyBus(failures=1)
    relay = OutboxRelay(db, bus)
    with pytest.raises(BusUnavailable) as failed:
        relay.relay_once()
    assert f"{PREFIX}.predictions" in str(failed.value)
    with db.reading() as s:
        assert f"{PREFIX}.predictions" in s.scalar(select(OutboxEvent.last_error).limit(1))
    assert relay.relay_once() == 5
    assert bus.ensured == [[f"{PREFIX}.predictions"]]  # once, before the retry
    relay.close()


@pytest.fixture(scope="module")
def strict_kafka() -> Iterator[KafkaBroker]:
    """A broker that creates no topic on a producer's request, as many production ones."""
    broker = KafkaBroker(settings={"auto.create.topics.enable": "false"}).start()
    yield broker
    broker.discard()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_deleted_topic_is_created_again_and_named(db: Database, strict_kafka) -> None:  # noqa: ANN001
    bus = KafkaBus([strict_kafka.bootstrap], delivery_timeout_s=2)
    topics = events.topics(PREFIX)
    bus.ensure_topics(topics)
    admin = AdminClient({"bootstrap.servers": strict_kafka.bootstrap})
    for future in admin.delete_topics([f"{PREFIX}.predictions"]).values():
        future.result()
    wait_until(lambda: f"{PREFIX}.predictions" not in admin.list_topics(timeout=5).topics, 30,
               "the topic to be gone")
    write_outbox(db, 10, PREFIX)
    relay = OutboxRelay(db, bus)
    relay.supervisor.min_backoff_s = 0.1
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), kwargs={"max_backoff_s": 1.0})
    thread.start()
    try:
        wait_until(lambda: pending_count(db) == 0, 60, "the relay to recreate the topic")
    finally:
        stop.set()
        thread.join(30)
    assert f"{PREFIX}.predictions" in admin.list_topics(timeout=5).topics
    with db.reading() as s:
        errors = s.scalars(select(OutboxEvent.last_error)).all()
    assert any(e and f"{PREFIX}.predictions" in e for e in errors), errors
