"""The embedded bus: an append-only log table in the SQL store.

Durable across restarts and shared by several processes on one machine through the database.
Offsets are the log's row ids (increasing within a partition, not contiguous). Group members
heartbeat into `bus_members`; each poll shares the group's partitions round-robin among the live
members, so adding a worker process spreads the load the way a Kafka consumer group does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import OperationalError

from core.bus.base import (
    Bus,
    BusUnavailable,
    Consumer,
    Producer,
    Record,
    TopicPartition,
    partition_for,
)
from core.store.db import Database, utcnow
from core.store.models import BusMember, BusRecord, ConsumerOffset
from core.store.upsert import upsert

# Producers on PostgreSQL take this advisory lock so log ids become visible in id order; otherwise
# a reader could pass over an id whose transaction had not committed yet and never see it.
_APPEND_LOCK = 0x61627663


class EmbeddedProducer(Producer):
    def __init__(self, bus: EmbeddedBus) -> None:
        self.bus = bus

    def send_many(self, records: Iterable[tuple[str, str | None, bytes]]) -> None:
        now = utcnow()
        rows = [
            {
                "topic": topic,
                "partition": partition_for(key, self.bus.partitions),
                "key": key,
                "value": value,
                "created_at": now,
            }
            for topic, key, value in records
        ]
        if not rows:
            return
        try:
            with self.bus.db.session() as s:
                if self.bus.db.dialect == "postgresql":
                    s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _APPEND_LOCK})
                s.execute(BusRecord.__table__.insert(), rows)
        except OperationalError as exc:
            raise BusUnavailable(f"embedded bus append failed: {exc.orig}") from exc


class EmbeddedConsumer(Consumer):
    def __init__(self, bus: EmbeddedBus, group_id: str, topics: Iterable[str]) -> None:
        self.bus = bus
        self.group_id = group_id
        self.topics = sorted(set(topics))
        self.member_id = uuid.uuid4().hex
        self._positions: dict[TopicPartition, int] = {}
        self._assigned: set[TopicPartition] = set()
        self._last_heartbeat = 0.0
        self._closed = False

    # -- group membership -------------------------------------------------------------------
    def _rebalance(self) -> None:
        """Heartbeat, forget dead members, and recompute this member's share of partitions."""
        now = utcnow()
        db = self.bus.db
        with db.session() as s:
            upsert(
                s,
                BusMember.__table__,
                {
                    "group_id": self.group_id,
                    "member_id": self.member_id,
                    "topics": self.topics,
                    "heartbeat_at": now,
                },
                keys=["group_id", "member_id"],
            )
            cutoff = now - timedelta(seconds=self.bus.session_timeout_s)
            s.execute(
                delete(BusMember).where(
                    BusMember.group_id == self.group_id, BusMember.heartbeat_at < cutoff
                )
            )
            members = sorted(
                s.scalars(select(BusMember.member_id).where(BusMember.group_id == self.group_id))
            )
            everything = [
                TopicPartition(t, p) for t in self.topics for p in range(self.bus.partitions)
            ]
            mine = {
                tp for i, tp in enumerate(everything) if members[i % len(members)] == self.member_id
            }
            for tp in mine - self._assigned:
                committed = s.scalar(
                    select(ConsumerOffset.next_offset).where(
                        ConsumerOffset.group_id == self.group_id,
                        ConsumerOffset.topic == tp.topic,
                        ConsumerOffset.partition == tp.partition,
                    )
                )
                self._positions[tp] = committed or 0
        for tp in self._assigned - mine:
            self._positions.pop(tp, None)
        self._assigned = mine
        self._last_heartbeat = time.monotonic()

    def assignment(self) -> set[TopicPartition]:
        if not self._last_heartbeat:
            self._rebalance()
        return set(self._assigned)

    # -- reading ------------------------------------------------------------------------------
    def _fetch(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        with self.bus.db.session() as s:
            for tp in sorted(self._assigned):
                if len(out) >= max_records:
                    break
                rows = s.execute(
                    select(BusRecord.id, BusRecord.key, BusRecord.value)
                    .where(
                        BusRecord.topic == tp.topic,
                        BusRecord.partition == tp.partition,
                        BusRecord.id >= self._positions[tp],
                    )
                    .order_by(BusRecord.id)
                    .limit(max_records - len(out))
                ).all()
                for row in rows:
                    out.append(Record(tp.topic, tp.partition, row.id, row.key, bytes(row.value)))
                if rows:
                    self._positions[tp] = rows[-1].id + 1
        return out

    def poll(self, timeout_ms: int = 1000, max_records: int = 500) -> list[Record]:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            try:
                if time.monotonic() - self._last_heartbeat > self.bus.heartbeat_s:
                    self._rebalance()
                records = self._fetch(max_records)
            except OperationalError as exc:
                raise BusUnavailable(f"embedded bus read failed: {exc.orig}") from exc
            if records or time.monotonic() >= deadline:
                return records
            time.sleep(min(self.bus.poll_interval_s, max(0.0, deadline - time.monotonic())))

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        offsets = dict(self._positions) if offsets is None else dict(offsets)
        now = utcnow()
        try:
            with self.bus.db.session() as s:
                for tp, next_offset in offsets.items():
                    upsert(
                        s,
                        ConsumerOffset.__table__,
                        {
                            "group_id": self.group_id,
                            "topic": tp.topic,
                            "partition": tp.partition,
                            "next_offset": next_offset,
                            "updated_at": now,
                        },
                        keys=["group_id", "topic", "partition"],
                    )
        except OperationalError as exc:
            raise BusUnavailable(f"embedded bus commit failed: {exc.orig}") from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            with self.bus.db.session() as s:
                s.execute(
                    delete(BusMember).where(
                        BusMember.group_id == self.group_id, BusMember.member_id == self.member_id
                    )
                )
        except OperationalError:
            pass  # the member expires by its heartbeat anyway


class EmbeddedBus(Bus):
    def __init__(
        self,
        db: Database,
        partitions: int = 3,
        *,
        session_timeout_s: float = 10.0,
        heartbeat_s: float = 1.0,
        poll_interval_s: float = 0.05,
    ) -> None:
        self.db = db
        self.partitions = partitions
        self.session_timeout_s = session_timeout_s
        self.heartbeat_s = heartbeat_s
        self.poll_interval_s = poll_interval_s

    def ensure_topics(self, topics: Iterable[str]) -> None:
        """Topics are implicit in the log table; nothing to create."""

    def producer(self) -> Producer:
        return EmbeddedProducer(self)

    def consumer(self, group_id: str, topics: Iterable[str]) -> Consumer:
        return EmbeddedConsumer(self, group_id, topics)

    def check(self) -> None:
        try:
            with self.db.session() as s:
                s.scalar(select(func.count()).select_from(BusMember))
        except OperationalError as exc:
            raise BusUnavailable(f"embedded bus store unreachable: {exc.orig}") from exc
