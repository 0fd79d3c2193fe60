"""Retention: prune what the stream no longer needs, so the store does not grow without end.

Three tables only grow: sent `outbox` rows, the embedded log's `bus_log` records, and the
worker's `processed_events` ids (its guard against applying an event twice). `prune` deletes,
in batches:

* **bus_log** records of a partition below the committed offset of *every* consumer group that
  has read the log (a group with no offset there holds the whole partition), and older than the
  retention: nobody will read them again. A group that first joins later starts after them, as
  a new Kafka group starts after expired segments.
* **outbox** rows sent more than the retention ago, and before `deliverable_since` (below).
* **processed_events** ids, only when no copy of their event can reach a worker again, so that
  pruning never lets an event be counted twice. Copies of an event come from its outbox row: the
  relay (re)publishes a row only while it is unsent, so once it is sent at T_s no new copy
  appears, and every copy already in the log was appended by T_s. A worker is delivered only
  records at or after its group's committed offset; the oldest such record on the embedded log
  was appended at T_u (`deliverable_since`). So an id is pruned when it was processed more than
  the retention ago and its outbox row was sent before T_u — or that row is gone, which the rule
  above allows only for rows sent before T_u. Unsent rows keep their ids, whatever their age,
  and so do the ids of parked events (`abvoc events replay` may apply one any time later).
  On Kafka the committed offsets and record times are the broker's, so T_u is taken as
  now − retention: keep the retention at least the topics' `retention.ms` (Kafka's default, 7
  days, is abvoc's default too), since a group whose offsets expire re-reads from the earliest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, func, or_, select, tuple_
from sqlalchemy.orm import Session

from core.payload_ids import payload_id
from core.store.db import Database, utcnow
from core.store.models import (
    BusMember,
    BusRecord,
    ConsumerOffset,
    OutboxEvent,
    ParkedEvent,
    ProcessedEvent,
)
from core.store.upsert import in_values
from core.times import as_utc

DEFAULT_RETENTION = timedelta(days=7)
BATCH = 5000


@dataclass(frozen=True)
class Pruned:
    outbox: int
    bus_log: int
    processed_events: int
    deliverable_since: datetime

    def as_dict(self) -> dict[str, object]:
        return {"outbox": self.outbox, "bus_log": self.bus_log,
                "processed_events": self.processed_events,
                "deliverable_since": self.deliverable_since.isoformat()}


def _floors(s: Session) -> dict[tuple[str, int], int]:
    """Per partition of the embedded log, the lowest offset some group may still read."""
    groups = set(s.scalars(select(ConsumerOffset.group_id).distinct()))
    groups |= set(s.scalars(select(BusMember.group_id).distinct()))
    committed: dict[tuple[str, int], dict[str, int]] = {}
    for group, topic, partition, offset in s.execute(select(
            ConsumerOffset.group_id, ConsumerOffset.topic, ConsumerOffset.partition,
            ConsumerOffset.next_offset)):
        committed.setdefault((topic, partition), {})[group] = offset
    partitions = s.execute(select(BusRecord.topic, BusRecord.partition).distinct()).all()
    floors = {}
    for topic, partition in partitions:
        offsets = committed.get((topic, partition), {})
        # A group that has read other partitions but not this one still has all of it to read.
        floors[(topic, partition)] = min(offsets.get(g, 0) for g in groups) if groups else 0
    return floors


def deliverable_since(s: Session, now: datetime, retention: timedelta) -> datetime:
    """T_u: when the oldest record some group may still be delivered was appended (now, when
    the embedded log holds none; now − retention where the bus is Kafka)."""
    oldest = now
    for (topic, partition), floor in _floors(s).items():
        appended = s.scalar(select(func.min(BusRecord.created_at)).where(
            BusRecord.topic == topic, BusRecord.partition == partition, BusRecord.id >= floor))
        if appended is not None:
            oldest = min(oldest, as_utc(appended))
    return oldest


def _batched(db: Database, build) -> int:  # noqa: ANN001 - a function of the session
    """Run a delete of at most BATCH rows per transaction until it deletes nothing."""
    total = 0
    while True:
        with db.session() as s:
            deleted = s.execute(build(s)).rowcount or 0
        total += deleted
        if deleted < BATCH:
            return total


def prune(db: Database, retention: timedelta = DEFAULT_RETENTION, *, embedded: bool = True,
          now: datetime | None = None) -> Pruned:
    """Delete sent outbox rows, consumed log records and unreachable event ids (see above)."""
    now = now or utcnow()
    cutoff = now - retention
    with db.session() as s:
        floors = _floors(s) if embedded else {}
        since = deliverable_since(s, now, retention) if embedded else cutoff
        # The log's newest record stays, whatever its age: offsets are its ids, and SQLite gives
        # a new row max(id) + 1, so with the newest deleted new events took ids below every
        # committed offset and were never read.
        newest = s.scalar(select(func.max(BusRecord.id))) if floors else None

    bus_deleted = 0
    for (topic, partition), floor in floors.items():
        def old_records(_s: Session, topic: str = topic, partition: int = partition,
                        floor: int = min(floor, newest or 0)):  # noqa: ANN202
            ids = (select(BusRecord.id).where(
                BusRecord.topic == topic, BusRecord.partition == partition,
                BusRecord.id < floor, BusRecord.created_at < cutoff)
                .order_by(BusRecord.id).limit(BATCH))
            return delete(BusRecord).where(BusRecord.id.in_(ids.scalar_subquery()))
        bus_deleted += _batched(db, old_records)

    sent_before = min(cutoff, since)
    outbox_ids = (select(OutboxEvent.id).where(OutboxEvent.sent_at.is_not(None),
                                               OutboxEvent.sent_at < sent_before)
                  .order_by(OutboxEvent.id).limit(BATCH))
    outbox_deleted = _batched(db, lambda _s: delete(OutboxEvent).where(
        OutboxEvent.id.in_(outbox_ids.scalar_subquery())))

    o, pe, parked = OutboxEvent, ProcessedEvent, ParkedEvent
    may_come_again = exists().where(o.event_id == pe.event_id,
                                    or_(o.sent_at.is_(None), o.sent_at >= since))
    # A parked copy may be replayed any time: its id stays while it is parked.
    is_parked = exists().where(parked.group_id == pe.group_id, parked.event_id == pe.event_id)
    keys = (select(pe.group_id, pe.event_id)
            .where(and_(pe.processed_at < cutoff, ~may_come_again, ~is_parked)).limit(BATCH))
    processed_deleted = _batched(db, lambda _s: delete(pe).where(
        tuple_(pe.group_id, pe.event_id).in_(keys)))
    return Pruned(outbox_deleted, bus_deleted, processed_deleted, since)


def prune_inputs(db: Database, hours: float, *, embedded: bool = True,
                 now: datetime | None = None) -> int:
    """Delete served inputs older than `hours`, except those a relabel item holds (by input
    hash) and those of predictions a parked event names: the bound on the inputs kept for
    annotators is traffic x input retention, plus the queued items' inputs. At 0 hours (keep
    none) every input not held goes: those kept before the setting changed too.

    A parked correction (say, refused for a worker's wrong ABVOC_SECRET_KEY) is applied by
    `abvoc events replay` whenever the cause is fixed, often past the input retention: its
    verification item then needs the input, and an item without one is never offered. So
    do the corrections not yet applied (a bus down, a worker stopped): see _not_applied_since."""
    from core.store.models import PredictionInput, RelabelItem

    i = PredictionInput
    now = now or utcnow()
    cutoff = _not_applied_since(db, now, embedded) - timedelta(hours=hours)
    held = exists().where(RelabelItem.input_hash == i.input_hash)
    parked = _parked_predictions(db)
    pruned, after = 0, ""
    while True:  # along the primary key, so inputs a parked event holds are passed once
        with db.session() as s:
            ids = s.scalars(select(i.prediction_id)
                            .where(i.created_at < cutoff, ~held, i.prediction_id > after)
                            .order_by(i.prediction_id).limit(BATCH)).all()
            gone = [p for p in ids if p not in parked]
            if gone:
                pruned += s.execute(delete(i).where(
                    in_values(s, i.prediction_id, gone))).rowcount or 0
        if len(ids) < BATCH:
            return pruned
        after = ids[-1]


def _not_applied_since(db: Database, now: datetime, embedded: bool) -> datetime:
    """When the oldest event that no worker has applied yet was accepted: an outbox row unsent,
    or (embedded log) sent at or after T_u, when the oldest record a group may still read was
    appended. A correction it carries came within the input retention of its prediction, so
    the inputs served since then, less the retention, are kept until the worker catches up.
    Records a Kafka broker holds unread are not seen from the store."""
    with db.reading() as s:
        since = deliverable_since(s, now, DEFAULT_RETENTION) if embedded else None
        waiting = OutboxEvent.sent_at.is_(None)
        if since is not None:
            waiting = or_(waiting, OutboxEvent.sent_at >= since)
        oldest = s.scalar(select(func.min(OutboxEvent.created_at)).where(waiting))
    return now if oldest is None else min(now, as_utc(oldest))


def _parked_predictions(db: Database) -> frozenset[str]:
    """The predictions parked events name (a correction's, a prediction's own): replayed, each
    enqueues relabel items that need the prediction's input."""
    with db.reading() as s:
        payloads = s.scalars(select(ParkedEvent.payload)
                             .execution_options(yield_per=1000))
        return frozenset(filter(None, (payload_id(p, "prediction_id") for p in payloads)))
