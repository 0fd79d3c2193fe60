"""The embedded log's group protocol and the relay on one store: generations fence a member that
lost its partitions, a poll is fair to every partition, several relays never publish a row
twice, and reads on SQLite never wait for (or block) a writer."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select

from core.bus.base import CommitRefused, TopicPartition, partition_for
from core.bus.embedded import EmbeddedBus
from core.health import outbox_lag_s
from core.outbox import PG_RELAY_LOCK, OutboxRelay, pending_count
from core.store.db import Database
from core.store.models import BusRecord, ConsumerOffset, OutboxEvent
from core.stream import next_offsets
from tests.support.flow import joined, write_outbox

TOPIC = "log.t"


def key_for(partition: int, partitions: int = 3) -> str:
    return next(f"k{i}" for i in range(1000) if partition_for(f"k{i}", partitions) == partition)


def produce(bus: EmbeddedBus, counts: dict[int, int]) -> None:
    bus.producer().send_many(
        (TOPIC, key_for(p), f"{p}-{i}".encode()) for p, n in counts.items() for i in range(n)
    )


def committed(db: Database, group: str) -> dict[int, int]:
    with db.session() as s:
        rows = s.execute(select(ConsumerOffset.partition, ConsumerOffset.next_offset)
                         .where(ConsumerOffset.group_id == group)).all()
    return dict(rows)


def test_a_member_that_lost_its_partitions_cannot_commit(db: Database) -> None:
    slow = EmbeddedBus(db, heartbeat_s=3600, session_timeout_s=3600)
    produce(slow, {0: 10, 1: 10, 2: 10})
    a = slow.consumer("g", [TOPIC])
    records = a.poll(timeout_ms=500, max_records=100)
    assert len(records) == 30 and len(a.assignment()) == 3
    # a stops heartbeating; b's bus forgets it after a short session timeout and takes it all.
    quick = EmbeddedBus(db, heartbeat_s=0.0, session_timeout_s=0.3)
    time.sleep(0.5)
    b = quick.consumer("g", [TOPIC])
    assert len(b.poll(timeout_ms=500, max_records=100)) == 30
    assert b.assignment() == {TopicPartition(TOPIC, p) for p in range(3)}
    with pytest.raises(CommitRefused, match="stale"):
        a.commit(next_offsets(records))
    assert committed(db, "g") == {}  # the fenced member wrote nothing
    b.commit()
    assert committed(db, "g") == {p: max(r.offset for r in records if r.partition == p) + 1
                                  for p in range(3)}
    a.close()
    b.close()


def test_a_join_moves_the_generation_and_the_old_member_rejoins(db: Database) -> None:
    bus = EmbeddedBus(db, heartbeat_s=3600, session_timeout_s=3600)
    produce(bus, {0: 5, 1: 5, 2: 5})
    a = bus.consumer("g", [TOPIC])
    records = a.poll(timeout_ms=500, max_records=100)
    b = bus.consumer("g", [TOPIC])
    b.poll(timeout_ms=100)
    assert b.generation == a.generation + 1
    with pytest.raises(CommitRefused):
        a.commit(next_offsets(records))
    # a rejoins on its next poll, holds only its share, and reads it again from the committed
    # offsets (nothing was committed), so nothing it read is lost.
    again = a.poll(timeout_ms=500, max_records=100)
    assert a.generation == b.generation
    assert a.assignment() and not a.assignment() & b.assignment()
    assert {r.tp for r in again} == a.assignment()
    assert len(again) == 5 * len(a.assignment())
    a.commit(next_offsets(again))  # the current generation commits
    a.close()
    b.close()


def test_a_member_reading_other_topics_takes_no_share_of_these(db: Database) -> None:
    """A worker with a mistyped topic prefix joined the group and was handed partitions of the
    real topics it never read: 52 accepted events waited unapplied while /readyz said ready."""
    bus = EmbeddedBus(db, heartbeat_s=3600, session_timeout_s=3600)
    produce(bus, {0: 4, 1: 4, 2: 4})
    typo = bus.consumer("g", ["logx.t"])
    typo.poll(timeout_ms=100)
    real = bus.consumer("g", [TOPIC])
    assert len(real.poll(timeout_ms=500, max_records=100)) == 12
    assert real.assignment() == {TopicPartition(TOPIC, p) for p in range(3)}
    assert {tp.topic for tp in typo.assignment()} <= {"logx.t"}
    # Members on the same topics share them round-robin, as before (and as older nodes do).
    twin = bus.consumer("g", [TOPIC])
    twin.poll(timeout_ms=100)
    real.poll(timeout_ms=100)
    assert real.assignment() and twin.assignment()
    assert real.assignment() | twin.assignment() == {TopicPartition(TOPIC, p) for p in range(3)}
    for c in (typo, real, twin):
        c.close()


def test_committed_offsets_never_move_backwards(db: Database) -> None:
    bus = EmbeddedBus(db, heartbeat_s=3600)
    produce(bus, {1: 20})
    consumer = bus.consumer("g", [TOPIC])
    records = consumer.poll(timeout_ms=500)
    tp = TopicPartition(TOPIC, 1)
    consumer.commit({tp: records[-1].offset + 1})
    consumer.commit({tp: records[3].offset})  # a late, lower commit
    assert committed(db, "g") == {1: records[-1].offset + 1}
    consumer.close()


def test_one_busy_partition_does_not_starve_the_others(db: Database) -> None:
    bus = EmbeddedBus(db, heartbeat_s=3600)
    produce(bus, {0: 600, 2: 5})
    consumer = bus.consumer("g", [TOPIC])
    first = consumer.poll(timeout_ms=500, max_records=100)
    assert len(first) == 100
    assert Counter(r.partition for r in first)[2] == 5  # the quiet partition is not kept waiting
    consumer.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_reads_on_sqlite_take_no_write_lock(db: Database) -> None:
    bus = EmbeddedBus(db, heartbeat_s=3600)
    produce(bus, {0: 3})
    write_outbox(db, 5, "t")
    consumer = bus.consumer("g", [TOPIC])
    consumer.poll(timeout_ms=200)  # joined; no rebalance due for an hour
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with db.session() as s:
            s.execute(BusRecord.__table__.insert(), [{
                "topic": TOPIC, "partition": 1, "key": "x", "value": b"v",
                "created_at": s.scalar(select(BusRecord.created_at).limit(1))}])
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=writer, name="writer", daemon=True)
    thread.start()
    try:
        assert holding.wait(10)
        start = time.monotonic()
        consumer.poll(timeout_ms=0)
        bus.check()
        assert pending_count(db) == 5
        assert outbox_lag_s(db) >= 0
        assert time.monotonic() - start < 2.0  # busy_timeout is 30 s: no read waited for it
    finally:
        release.set()
        joined([thread])
        consumer.close()


@contextmanager
def running(relay: OutboxRelay, *, idle_s: float, linger_s: float) -> Iterator[None]:
    """The relay's supervised loop in a thread for the length of the with-block."""
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,),
                              kwargs={"idle_s": idle_s, "linger_s": linger_s}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        joined([thread])


def _event_ids(db: Database) -> list[str]:
    with db.session() as s:
        return [json.loads(v)["event_id"] for v in s.scalars(select(BusRecord.value))]


def test_several_relays_never_publish_a_row_twice(db: Database) -> None:
    write_outbox(db, 1200, "t")
    handles = [Database(db.url) for _ in range(4)]
    relays = [OutboxRelay(h, EmbeddedBus(h), batch_size=40) for h in handles]
    go = threading.Barrier(len(relays))

    def drain(relay: OutboxRelay) -> None:
        go.wait()
        idle = 0
        while idle < 3:
            idle = 0 if relay.relay_once() else idle + 1

    threads = [threading.Thread(target=drain, args=(r,), daemon=True) for r in relays]
    for t in threads:
        t.start()
    joined(threads, 120)
    for h in handles:
        h.dispose()
    ids = _event_ids(db)
    assert pending_count(db) == 0
    assert len(ids) == 1200 and len(set(ids)) == 1200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_dead_relays_claim_expires_and_its_rows_are_sent(db: Database) -> None:
    write_outbox(db, 30, "t")
    dead = OutboxRelay(db, EmbeddedBus(db), batch_size=20, claim_ttl_s=0.5)
    _, claimed = dead._claim()
    assert len(claimed) == 20  # claimed, then the relay died before publishing
    live = OutboxRelay(db, EmbeddedBus(db))
    assert live.relay_once() == 10  # the claimed rows are left alone while the claim lives
    time.sleep(0.6)
    assert live.relay_once() == 20
    assert pending_count(db) == 0
    ids = _event_ids(db)
    assert len(ids) == len(set(ids)) == 30


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_relay_marks_only_its_own_claim_within_its_id_range(db: Database) -> None:
    """The SQLite relay marks its batch by claim token and id range: rows inside that range
    held by another relay's live claim are left unsent, for that relay to send."""
    write_outbox(db, 30, "t")
    expired = OutboxRelay(db, EmbeddedBus(db), batch_size=10, claim_ttl_s=0.3)
    expired._claim()  # ids 1-10, then the relay died
    other = OutboxRelay(db, EmbeddedBus(db), batch_size=10)
    other_claim, other_rows = other._claim()  # ids 11-20, held while this relay publishes
    time.sleep(0.4)
    relay = OutboxRelay(db, EmbeddedBus(db), batch_size=30)
    assert relay.relay_once() == 20  # ids 1-10 and 21-30: a range that spans the other claim
    assert pending_count(db) == 10
    with db.reading() as s:
        held = s.execute(select(OutboxEvent.id, OutboxEvent.claimed_by)
                         .where(OutboxEvent.sent_at.is_(None))).all()
    assert {row.id for row in held} == {r.id for r in other_rows}
    assert {row.claimed_by for row in held} == {other_claim.token}
    other._publish(other_rows)
    with db.session() as s:
        other._mark(s, other_claim, None)
    assert pending_count(db) == 0
    ids = _event_ids(db)
    assert len(ids) == len(set(ids)) == 30


def test_after_a_short_batch_the_relay_lingers_so_the_next_one_grows(db: Database) -> None:
    """A batch smaller than the relay's batch size means the outbox ran dry: the relay waits
    `linger_s` before claiming again, so rows written meanwhile go out together (fewer write
    transactions on the store) instead of one small batch each."""
    relay = OutboxRelay(db, EmbeddedBus(db), batch_size=100)
    sizes: list[int] = []
    publish = relay._publish
    relay._publish = lambda rows: (sizes.append(len(rows)), publish(rows))[1]
    write_outbox(db, 5, "t", run="first")
    with running(relay, idle_s=0.01, linger_s=1.0):
        deadline = time.monotonic() + 10
        while not sizes and time.monotonic() < deadline:
            time.sleep(0.01)
        for i in range(4):  # one by one while the relay lingers (it would idle only 10 ms)
            time.sleep(0.05)
            write_outbox(db, 1, "t", run=f"later-{i}")
        while pending_count(db) and time.monotonic() < deadline:
            time.sleep(0.01)
    assert sizes == [5, 4]
    assert pending_count(db) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_running_relay_marks_a_batch_in_the_write_that_claims_the_next(db: Database) -> None:
    """SQLite has one write lock for the API, the relay and the worker: a running relay marks
    each batch sent in the same transaction as its next claim, one write per batch, not two."""
    write_outbox(db, 50, "t")
    handle = Database(db.url)
    writes: list[list[str]] = []  # the outbox statements of each write transaction

    def trace(sql: str) -> None:
        if sql.startswith("BEGIN IMMEDIATE"):
            writes.append([])
        elif writes and sql.startswith("UPDATE outbox"):
            writes[-1].append(sql)

    event.listen(handle.engine, "connect",
                 lambda dbapi_conn, _record: dbapi_conn.set_trace_callback(trace))
    relay = OutboxRelay(handle, EmbeddedBus(handle), batch_size=10)
    with running(relay, idle_s=0.01, linger_s=0.01):
        deadline = time.monotonic() + 20
        while pending_count(db) and time.monotonic() < deadline:
            time.sleep(0.01)
    handle.dispose()
    outbox_writes = [len(w) for w in writes if w]
    # The first claim marks nothing; each later one marks the batch before it (the sixth
    # claims nothing); later idle claims mark nothing again.
    assert outbox_writes[:6] == [1, 2, 2, 2, 2, 2]
    assert set(outbox_writes[6:]) <= {1}
    assert all("claimed_by" in w[-1] and "sent_at" in w[0] for w in writes if len(w) == 2)
    assert pending_count(db) == 0
    ids = _event_ids(db)
    assert len(ids) == len(set(ids)) == 50


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_stopped_relay_marks_its_last_batch(db: Database) -> None:
    """The last batch a relay published is marked when it stops, not left to its claim's
    expiry (which would publish it a second time)."""
    write_outbox(db, 7, "t")
    relay = OutboxRelay(db, EmbeddedBus(db), batch_size=10)
    assert relay._relay_batch() == 7
    assert pending_count(db) == 7  # published; the next claim or the stop marks it
    relay.close()
    assert pending_count(db) == 0
    assert len(_event_ids(db)) == 7


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_relays_on_postgresql_take_turns_and_a_dead_ones_turn_passes(db: Database) -> None:
    """While one relay publishes (it holds the relays' advisory lock), another publishes
    nothing and says so as when nothing is pending; when the first is gone (its connection
    closed, as a relay that dies), the other sends every row once."""
    write_outbox(db, 50, "t")
    relay = OutboxRelay(db, EmbeddedBus(db), batch_size=20)
    busy = db.engine.connect()
    assert busy.scalar(select(func.pg_try_advisory_xact_lock(PG_RELAY_LOCK)))
    assert relay.relay_once() == 0
    assert pending_count(db) == 50 and _event_ids(db) == []
    busy.close()  # the holder dies: its transaction ends, the lock with it
    while relay.relay_once():
        pass
    relay.close()
    ids = _event_ids(db)
    assert pending_count(db) == 0
    assert len(ids) == len(set(ids)) == 50
