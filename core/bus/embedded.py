"""The embedded bus: an append-only log table in the SQL store.

Durable across restarts and shared by several processes on one machine through the database.
Offsets are the log's row ids (increasing within a partition, not contiguous). Group members
heartbeat into `bus_members`; each poll shares the group's partitions round-robin among the live
members, so adding a worker process spreads the load the way a Kafka consumer group does.

Every change of a group's membership moves its generation on (`bus_groups`); a member commits
only under the generation it last joined, and only for partitions it holds, else the commit is
refused and the member rejoins. Committed offsets only move forwards. Reads (polls, checks) run
in read-only transactions, which on SQLite take no write lock.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta

from sqlalchemy import case, delete, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core.bus.base import (
    Bus,
    BusUnavailable,
    CommitRefused,
    Consumer,
    PartitionLag,
    Producer,
    Record,
    TopicPartition,
    partition_for,
)
from core.store.db import Database, utcnow
from core.store.models import BusGroup, BusMember, BusRecord, ConsumerOffset
from core.store.upsert import dialect_insert, insert_ignore, insert_many, upsert
from core.times import as_utc

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
                insert_many(s, BusRecord.__table__, rows)  # one statement, in order
        except OperationalError as exc:
            raise BusUnavailable(f"embedded bus append failed: {exc.orig}") from exc


class EmbeddedConsumer(Consumer):
    def __init__(self, bus: EmbeddedBus, group_id: str, topics: Iterable[str]) -> None:
        self.bus = bus
        self.group_id = group_id
        self.topics = sorted(set(topics))
        self.member_id = uuid.uuid4().hex
        self.generation = 0
        self._positions: dict[TopicPartition, int] = {}
        self._assigned: set[TopicPartition] = set()
        self._last_heartbeat = 0.0
        self._turn = 0
        self._closed = False

    # -- group membership -------------------------------------------------------------------
    def _lock_group(self, s: Session) -> BusGroup:
        """The group's row, locked until the transaction ends (created on first use)."""
        insert_ignore(s, BusGroup.__table__, [{"group_id": self.group_id, "generation": 0,
                                               "members": "", "updated_at": utcnow()}],
                      keys=["group_id"])
        return s.execute(
            select(BusGroup).where(BusGroup.group_id == self.group_id).with_for_update()
        ).scalar_one()

    def _rebalance(self) -> None:
        """Heartbeat, forget dead members, move the generation on if membership changed, and
        recompute this member's share of partitions."""
        now = utcnow()
        db = self.bus.db
        with db.session() as s:
            # Every rebalance of the group queues on its row first, so two members never lock
            # each other's member rows in opposite orders.
            group = self._lock_group(s)
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
            subscribed = dict(s.execute(select(BusMember.member_id, BusMember.topics)
                                        .where(BusMember.group_id == self.group_id)).all())
            members = sorted(subscribed)
            signature = hashlib.sha256(",".join(members).encode()).hexdigest()
            if group.members != signature:
                group.generation += 1
                group.members = signature
                group.updated_at = now
            everything = [
                TopicPartition(t, p) for t in self.topics for p in range(self.bus.partitions)
            ]
            # A topic's partitions go round-robin among the members that read it: a member of
            # the group reading other topics (a mistyped ABVOC_TOPIC_PREFIX) took a share of
            # them it never read. With every member on the same topics this is the plain
            # round-robin an older node computes, so a mixed group agrees on who holds what.
            readers = {t: [m for m in members if t in (subscribed[m] or [])] or [self.member_id]
                       for t in self.topics}
            mine = {tp for i, tp in enumerate(everything)
                    if readers[tp.topic][i % len(readers[tp.topic])] == self.member_id}
            if group.generation != self.generation:
                # A new generation: read every held partition from its committed offset, since
                # what this member read but did not commit may have been refused.
                self._positions = self._committed(s, mine)
            else:
                for tp in mine - self._assigned:
                    self._positions[tp] = self._committed(s, {tp})[tp]
            self.generation = group.generation
        for tp in self._assigned - mine:
            self._positions.pop(tp, None)
        self._assigned = mine
        self._last_heartbeat = time.monotonic()

    def _committed(self, s: Session, tps: set[TopicPartition]) -> dict[TopicPartition, int]:
        if not tps:
            return {}
        rows = s.execute(
            select(ConsumerOffset.topic, ConsumerOffset.partition, ConsumerOffset.next_offset)
            .where(ConsumerOffset.group_id == self.group_id,
                   ConsumerOffset.topic.in_({tp.topic for tp in tps}))
        ).all()
        stored = {TopicPartition(r.topic, r.partition): r.next_offset for r in rows}
        return {tp: stored.get(tp, 0) for tp in tps}

    def assignment(self) -> set[TopicPartition]:
        if not self._last_heartbeat:
            self._rebalance()
        return set(self._assigned)

    def lag(self) -> dict[TopicPartition, PartitionLag]:
        """Per partition held: the position, and the log's last id there plus one (so `behind`
        is a span of ids, not a count of records: ids are shared by all partitions)."""
        held = sorted(self._assigned)
        if not held:
            return {}
        ends = {}
        try:
            with self.bus.db.reading() as s:
                for tp in held:  # one index probe each (a GROUP BY would scan the log)
                    last = s.scalar(select(func.max(BusRecord.id)).where(
                        BusRecord.topic == tp.topic, BusRecord.partition == tp.partition))
                    ends[tp] = 0 if last is None else last + 1
        except OperationalError as exc:
            raise BusUnavailable(f"embedded bus read failed: {exc.orig}") from exc
        return {tp: PartitionLag(self._positions.get(tp, 0), ends[tp]) for tp in held}

    # -- reading ------------------------------------------------------------------------------
    def _read(self, s: Session, tp: TopicPartition, limit: int) -> list[Record]:
        rows = s.execute(
            select(BusRecord.id, BusRecord.key, BusRecord.value, BusRecord.created_at)
            .where(
                BusRecord.topic == tp.topic,
                BusRecord.partition == tp.partition,
                BusRecord.id >= self._positions[tp],
            )
            .order_by(BusRecord.id)
            .limit(limit)
        ).all()
        if rows:
            self._positions[tp] = rows[-1].id + 1
        return [Record(tp.topic, tp.partition, r.id, r.key, bytes(r.value), _epoch(r.created_at))
                for r in rows]

    def _fetch(self, max_records: int) -> list[Record]:
        """Up to `max_records`, shared fairly: each held partition gets an equal share first
        (starting from a different partition each poll), then the busy ones fill what is left."""
        assigned = sorted(self._assigned)
        if not assigned:
            return []
        self._turn = (self._turn + 1) % len(assigned)
        order = assigned[self._turn:] + assigned[: self._turn]
        share = max(1, max_records // len(order))
        out: list[Record] = []
        with self.bus.db.reading() as s:
            full = []
            for tp in order:
                if len(out) >= max_records:
                    break
                got = self._read(s, tp, min(share, max_records - len(out)))
                out += got
                if len(got) == share:
                    full.append(tp)
            for tp in full:
                if len(out) >= max_records:
                    break
                out += self._read(s, tp, max_records - len(out))
        return out

    def poll(self, timeout_ms: int = 1000, max_records: int = 500) -> list[Record]:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            try:
                since = time.monotonic() - self._last_heartbeat
                if not self._last_heartbeat or since > self.bus.heartbeat_s:
                    self._rebalance()
                records = self._fetch(max_records)
            except OperationalError as exc:
                raise BusUnavailable(f"embedded bus read failed: {exc.orig}") from exc
            if records or time.monotonic() >= deadline:
                return records
            time.sleep(min(self.bus.poll_interval_s, max(0.0, deadline - time.monotonic())))

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit under this member's generation; never moves an offset backwards."""
        offsets = dict(self._positions) if offsets is None else dict(offsets)
        if not offsets:
            return
        now = utcnow()
        try:
            with self.bus.db.session() as s:
                group = s.execute(
                    select(BusGroup.generation).where(BusGroup.group_id == self.group_id)
                    .with_for_update(read=True)
                ).scalar_one_or_none()
                foreign = set(offsets) - self._assigned
                if group != self.generation or foreign:
                    refused = (f"generation {self.generation} is stale (group at {group})"
                               if group != self.generation
                               else f"partitions {sorted(foreign)} are not held")
                else:
                    refused = None
                    self._store_offsets(s, offsets, now)
        except OperationalError as exc:
            raise BusUnavailable(f"embedded bus commit failed: {exc.orig}") from exc
        if refused is not None:
            self._last_heartbeat = 0.0  # rejoin on the next poll
            raise CommitRefused(f"commit by member {self.member_id} of group {self.group_id} "
                                f"refused: {refused}; it rejoins and reads them again")

    def _store_offsets(self, s: Session, offsets: Mapping[TopicPartition, int], now) -> None:  # noqa: ANN001
        table = ConsumerOffset.__table__
        stmt = dialect_insert(s, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["group_id", "topic", "partition"],
            set_={
                "next_offset": case(
                    (stmt.excluded.next_offset > table.c.next_offset, stmt.excluded.next_offset),
                    else_=table.c.next_offset,
                ),
                "updated_at": stmt.excluded.updated_at,
            },
        )
        s.execute(stmt, [
            {"group_id": self.group_id, "topic": tp.topic, "partition": tp.partition,
             "next_offset": next_offset, "updated_at": now}
            for tp, next_offset in sorted(offsets.items())
        ])

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


def _epoch(value: object) -> float | None:
    if value is None or not hasattr(value, "timestamp"):
        return None
    return as_utc(value).timestamp()  # type: ignore[arg-type]


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

    def check(self, timeout_s: float = 5.0) -> None:  # the store's own timeouts apply
        try:
            with self.db.reading() as s:
                s.scalar(select(func.count()).select_from(BusMember))
        except OperationalError as exc:
            raise BusUnavailable(f"embedded bus store unreachable: {exc.orig}") from exc
