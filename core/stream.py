"""The consume loop every event consumer shares.

Commit order, per batch of records:
1. decode and validate each record (schema, then the consumer's own check, e.g. a receipt); a
   record that fails is parked with its reason, not dropped;
2. record the events' ids for this group (`processed_events`), keeping those not recorded before;
3. apply those, in the same store transaction as step 2, and commit it;
4. only then commit the bus offsets.
A crash between 3 and 4 replays the batch, and step 2 makes the replay a no-op.

An event the handler cannot apply, for any reason (an AbvocError, a lone surrogate the driver
cannot encode, a value the database refuses), is parked and the stream goes on. Errors that say
the store itself is unreachable (connection lost, server restarting) park nothing: they end the
round, and the supervisor (:mod:`core.supervision`) retries it from the committed offsets. A
topic deleted and created again under the member (TopicRecreated) ends its consumer after the
batches it read were committed, and the next step starts a new one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from core import events
from core.bus.base import Bus, CommitRefused, Consumer, Record, TopicPartition, TopicRecreated
from core.consumer_lag import LagTracker
from core.errors import AbvocError
from core.parking import PARKED_PAYLOAD_BYTES, ReceiptAlarm, count_parked, park
from core.store.db import Database, store_unreachable, utcnow
from core.store.models import ProcessedEvent
from core.store.upsert import JsonList, json_elements
from core.supervision import Supervisor

__all__ = ["PARKED_PAYLOAD_BYTES", "Batch", "StreamConsumer", "apply_batch", "apply_records",
           "next_offsets", "read_batch"]
log = logging.getLogger(__name__)
_PROCESSED = ProcessedEvent.__table__
POLL_RECORDS = 2000
"""Records read per poll, and so applied per store transaction: each batch costs about ten
statements and two commits whatever its size, so larger batches spend less per event (past a
few thousand the gain is small, and a batch holds SQLite's write lock for its length)."""

Handler = Callable[..., None]
"""Applies a batch of validated, not-yet-applied events inside the given transaction:
``handler(session, batch)``, or ``handler(session, batch, prepared)`` with a `Prepare` step."""
Prepare = Callable[[list[dict[str, Any]]], Any]
"""The part of a handler's work that needs no store (building rows, summing in memory), run on
the whole decoded batch before the transaction opens, so that the store's write lock (SQLite
has one for every writer: the API, the relay, the workers) is held only for the store's own
work. The handler gets its result when every event of the batch is fresh, the usual case;
otherwise (a replay, a parked event) it works from the fresh events alone."""
Check = Callable[[dict[str, Any]], None]
"""Raises AbvocError for a decoded event this consumer must not apply (e.g. a bad receipt)."""

def _reason(exc: Exception) -> str:
    """Why an event was parked, on one line: a store's refusal by the driver's own words
    (SQLAlchemy's text adds the statement and its parameters over several lines, so the
    listing of parked events, one line each, ran over a dozen lines of SQL)."""
    if isinstance(exc, AbvocError):
        return exc.message
    cause = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    return f"cannot apply: {type(cause).__name__}: {' '.join(str(cause).split())}"


def _claim(session: Session, group_id: str, batch: list[tuple[Record, dict]]) -> list:
    """Record the batch's event ids for the group and return the events not recorded before
    (first occurrence of each id), in one INSERT ... ON CONFLICT DO NOTHING RETURNING.

    Ids are inserted sorted, so concurrent members lock the same ids in the same order; a
    member that meets an id another one is applying waits for that transaction to end.
    """
    now = utcnow()
    ids = sorted({e["event_id"] for _, e in batch})
    claimed = set(session.execute(_claim_ids(session.get_bind().dialect.name),
                                  {"ids": ids, "group_id": group_id, "now": now}
                                  ).scalars().all())  # one fetch, not one per row
    fresh = []
    for record, event in batch:
        if event["event_id"] in claimed:
            claimed.discard(event["event_id"])
            fresh.append((record, event))
    return fresh


@cache
def _claim_ids(dialect: str) -> Any:
    """The ids as one JSON array that the server splits (see core.store.upsert.JsonList), the
    group and the time once each: no parameter row per id to build and bind in Python. ORDER
    BY the ids' position keeps the sorted lock order; SQLite needs a WHERE on an INSERT ...
    SELECT that has an ON CONFLICT clause."""
    source, event_id, position = json_elements(bindparam("ids", type_=JsonList()),
                                               _PROCESSED.c.event_id.type, dialect)
    rows = (select(bindparam("group_id", type_=_PROCESSED.c.group_id.type), event_id,
                   bindparam("now", type_=_PROCESSED.c.processed_at.type))
            .select_from(source).where(true()).order_by(position))
    return ((postgresql if dialect == "postgresql" else sqlite).insert(_PROCESSED)
            .from_select(["group_id", "event_id", "processed_at"], rows)
            .on_conflict_do_nothing(index_elements=["group_id", "event_id"])
            .returning(_PROCESSED.c.event_id))


def _decode(
    records: list[Record], check: Check | None = None
) -> tuple[list[tuple[Record, dict]], list[tuple[Record, str]]]:
    decoded: list[tuple[Record, dict]] = []
    bad: list[tuple[Record, str]] = []
    for record in records:
        try:
            event = events.decode(record.value)
            if check is not None:
                check(event)
            decoded.append((record, event))
        except AbvocError as exc:
            bad.append((record, exc.message))
        except (ValueError, TypeError, RecursionError) as exc:
            bad.append((record, _reason(exc)))
    return decoded, bad


def _prepare(prepare: Prepare | None, decoded: list[tuple[Record, dict]]) -> Any:
    """The handler's prepared batch, or None: an event the step cannot take is left to the
    handler, in the transaction, where a failing event is parked alone."""
    if prepare is None or not decoded:
        return None
    try:
        return prepare([e for _, e in decoded])
    except Exception:  # noqa: BLE001 - the handler meets the same event and parks it
        log.info("preparing a batch failed; the handler applies it unprepared", exc_info=True)
        return None


class Batch(NamedTuple):
    """Records read from the bus, decoded and checked, and the handler's prepared part."""

    records: list[Record]
    decoded: list[tuple[Record, dict]]
    bad: list[tuple[Record, str]]
    prepared: Any


def read_batch(records: list[Record], check: Check | None = None,
               prepare: Prepare | None = None) -> Batch:
    """The store-free part of applying `records`: decode, check, prepare."""
    decoded, bad = _decode(records, check)
    return Batch(records, decoded, bad, _prepare(prepare, decoded))


def apply_records(db: Database, group_id: str, records: list[Record], handler: Handler,
                  *, check: Check | None = None, prepare: Prepare | None = None) -> int:
    """Apply a batch exactly once in effect; return how many events were newly applied (see
    :func:`apply_batch`)."""
    return apply_batch(db, group_id, read_batch(records, check, prepare), handler)


def apply_batch(db: Database, group_id: str, batch: Batch, handler: Handler) -> int:
    """Apply a read batch exactly once in effect; return how many events were newly applied
    (see :func:`apply_parking`)."""
    return apply_parking(db, group_id, batch, handler)[0]


def apply_parking(db: Database, group_id: str, batch: Batch, handler: Handler, *,
                  count: bool = True) -> tuple[int, list[tuple[Record, str]]]:
    """Apply a read batch exactly once in effect; return how many events were newly applied
    and the records parked, with their reasons (those parked for the first time counted once
    their transaction committed, unless `count` is False: a replay of parked events parks
    nothing new).

    The whole batch goes in one transaction without a savepoint (two round trips fewer). When
    the handler fails on an event, that transaction is rolled back and the batch is applied
    again one event at a time, each under a savepoint, so only the bad event is parked. An
    error that says the store is unreachable is raised instead (nothing is parked for it).
    """
    decoded, bad, prepared = batch.decoded, batch.bad, batch.prepared
    try:
        with db.session() as s:
            first = [(record, reason) for record, reason in bad
                     if park(s, group_id, record, reason)]
            fresh = _claim(s, group_id, decoded) if decoded else []
            if fresh and prepared is not None and len(fresh) == len(decoded):
                handler(s, [e for _, e in fresh], prepared)
            elif fresh:
                handler(s, [e for _, e in fresh])
        if count:
            count_parked(first)
        return len(fresh), list(bad)
    except Exception as exc:
        if store_unreachable(exc):
            raise
        log.info("batch for group %s failed (%s); applying it event by event", group_id,
                 type(exc).__name__)
    parked = list(bad)
    with db.session() as s:
        first = [(record, reason) for record, reason in bad
                 if park(s, group_id, record, reason)]
        applied = 0
        for record, event in decoded:
            try:
                with s.begin_nested():
                    fresh = _claim(s, group_id, [(record, event)])
                    if fresh:
                        handler(s, [event])
                applied += len(fresh)
            except Exception as exc:
                if store_unreachable(exc):
                    raise
                parked.append((record, _reason(exc)))
                if park(s, group_id, record, _reason(exc)):
                    first.append(parked[-1])
    if count:
        count_parked(first)
    return applied, parked


def _lag_s(records: list[Record]) -> float:
    """How long the oldest record just read waited on the bus (0 when nothing waited)."""
    stamps = [r.timestamp for r in records if r.timestamp is not None]
    return max(0.0, time.time() - min(stamps)) if stamps else 0.0


def next_offsets(records: Iterable[Record]) -> dict[TopicPartition, int]:
    """Per partition, the offset after the highest one read (a poll's records of a partition
    come in order, but the highest wins whatever the order)."""
    last: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        if r.offset >= last.get(key, -1):
            last[key] = r.offset
    return {TopicPartition(topic, partition): offset + 1
            for (topic, partition), offset in last.items()}


class StreamConsumer:
    """Runs the loop for one group member: poll, apply, commit store, commit offsets.

    With `read_ahead`, the records that arrived while a batch was read are decoded and
    prepared on a helper thread while that batch's transaction runs: on PostgreSQL the
    transaction mostly waits for the server (the driver lets the helper run meanwhile), so
    the next batch is ready when it ends. On SQLite it stays off: the transaction holds the
    store's one write lock and would wait for the helper to hand back the interpreter."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        group_id: str,
        topics: list[str],
        handler: Handler,
        *,
        max_records: int = POLL_RECORDS,
        check: Check | None = None,
        prepare: Prepare | None = None,
        component: str | None = None,
        read_ahead: bool | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.group_id = group_id
        self.topics = topics
        self.handler = handler
        self.check = check
        self.prepare = prepare
        self.max_records = max_records
        self.read_ahead = db.dialect == "postgresql" if read_ahead is None else read_ahead
        self.applied = 0
        self.lag_s: float | None = None
        self.supervisor = Supervisor(component or f"consumer:{group_id}", db)
        self.lag = LagTracker(group_id)
        self.receipts = ReceiptAlarm(self.supervisor.component)
        self._consumer: Consumer | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._ahead: Future[Batch] | None = None

    def step(self, timeout_ms: int = 500) -> int:
        """One poll-apply-commit round; returns how many records it read."""
        if self._consumer is None:
            self.bus.ensure_topics(self.topics)
            self._consumer = self.bus.consumer(self.group_id, self.topics)
            if self.read_ahead:
                self._reader = ThreadPoolExecutor(1, f"{self.group_id}-read-ahead")
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            batch = ahead.result()
        else:
            try:
                records = self._consumer.poll(timeout_ms=timeout_ms,
                                              max_records=self.max_records)
            except TopicRecreated as exc:
                # Every batch read was committed: a new member takes over from the committed
                # offsets, the recreated topic's from its first record.
                log.info("consumer %s: %s", self.group_id, exc)
                self.close()
                return 0
            batch = read_batch(records, self.check, self.prepare) if records else None
        if batch is None:
            self._track_lag([])
            return 0
        if self._reader is not None:
            try:
                following = self._consumer.poll(timeout_ms=0, max_records=self.max_records)
            except TopicRecreated:  # this batch is committed first; the next step replaces it
                following = []
            if following:
                self._ahead = self._reader.submit(read_batch, following, self.check,
                                                  self.prepare)
        applied, parked = apply_parking(self.db, self.group_id, batch, self.handler)
        self.applied += applied
        self.receipts.check(batch.records, parked)
        try:
            self._consumer.commit(next_offsets(batch.records))
        except CommitRefused as exc:
            # The group rebalanced meanwhile: whoever holds these partitions now reads the
            # batch again and finds it applied. Not an error of this member.
            log.info("consumer %s: %s", self.group_id, exc)
        self._track_lag(batch.records)
        return len(batch.records)

    def _track_lag(self, records: list[Record]) -> None:
        """`lag_s` for the heartbeat: the age of what was just read, or, when larger, how long
        records have waited on a held partition where the position did not move (so that a
        consumer whose polls come back empty while records pile up is seen as lagging)."""
        if self._consumer is not None:
            self.lag.observe(self._consumer)
        self.lag_s = max(_lag_s(records), self.lag.stalled_s())

    def run(self, stop: threading.Event, *, max_backoff_s: float = 5.0) -> None:
        """Consume until `stop` is set, supervised: any error closes the consumer and the loop
        starts again from the committed offsets after a backoff (see core.supervision)."""
        self.supervisor.max_backoff_s = max_backoff_s

        def step() -> float | None:
            self.step()
            return self.lag_s

        self.supervisor.run(stop, step, self.close)

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member holds now (empty before its first poll)."""
        consumer = self._consumer
        return consumer.assignment() if consumer is not None else set()

    def close(self) -> None:
        """Close the consumer; a batch read ahead is dropped (it was not committed, so it is
        read again)."""
        self._ahead = None
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.shutdown(wait=True)
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close()
