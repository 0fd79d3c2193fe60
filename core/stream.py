"""The consume loop every event consumer shares.

Commit order, per batch of records:
1. decode and validate each record; a record that fails is parked with its reason, not dropped;
2. record the events' ids for this group (`processed_events`), keeping those not recorded before;
3. apply those, in the same store transaction as step 2, and commit it;
4. only then commit the bus offsets.
A crash between 3 and 4 replays the batch, and step 2 makes the replay a no-op.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.orm import Session

from core import events
from core.bus.base import Bus, BusUnavailable, Consumer, Record, TopicPartition
from core.errors import AbvocError, EventSchemaError
from core.store.db import Database, utcnow
from core.store.models import ParkedEvent, ProcessedEvent
from core.store.upsert import insert_ignore, insert_rows

log = logging.getLogger(__name__)
_PROCESSED = ProcessedEvent.__table__

Handler = Callable[[Session, list[dict[str, Any]]], None]
"""Applies a batch of validated, not-yet-applied events inside the given transaction."""


def _park(session: Session, group_id: str, record: Record, reason: str) -> None:
    log.warning(
        "parked %s[%d]@%d for group %s: %s",
        record.topic,
        record.partition,
        record.offset,
        group_id,
        reason,
    )
    insert_ignore(
        session,
        ParkedEvent.__table__,
        [
            {
                "group_id": group_id,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "payload": record.value,
                "reason": reason[:2000],
                "created_at": utcnow(),
            }
        ],
        keys=["group_id", "topic", "partition", "offset"],
    )


def _claim(session: Session, group_id: str, batch: list[tuple[Record, dict]]) -> list:
    """Record the batch's event ids for the group and return the events not recorded before
    (first occurrence of each id), in one INSERT ... ON CONFLICT DO NOTHING RETURNING.

    Ids are inserted sorted, so concurrent members lock the same ids in the same order; a
    member that meets an id another one is applying waits for that transaction to end.
    """
    now = utcnow()
    rows = [
        {"group_id": group_id, "event_id": event_id, "processed_at": now}
        for event_id in sorted({e["event_id"] for _, e in batch})
    ]
    claimed = {
        row.event_id
        for row in insert_rows(
            session, _PROCESSED, rows, keys=["group_id", "event_id"], returning=["event_id"]
        )
    }
    fresh = []
    for record, event in batch:
        if event["event_id"] in claimed:
            claimed.discard(event["event_id"])
            fresh.append((record, event))
    return fresh


def _decode(records: list[Record]) -> tuple[list[tuple[Record, dict]], list[tuple[Record, str]]]:
    decoded: list[tuple[Record, dict]] = []
    bad: list[tuple[Record, str]] = []
    for record in records:
        try:
            decoded.append((record, events.decode(record.value)))
        except EventSchemaError as exc:
            bad.append((record, exc.message))
    return decoded, bad


def apply_records(db: Database, group_id: str, records: list[Record], handler: Handler) -> int:
    """Apply a batch exactly once in effect; return how many events were newly applied.

    The whole batch goes in one transaction without a savepoint (two round trips fewer). When
    the handler refuses an event, that transaction is rolled back and the batch is applied
    again one event at a time, each under a savepoint, so only the bad event is parked.
    """
    decoded, bad = _decode(records)
    try:
        with db.session() as s:
            for record, reason in bad:
                _park(s, group_id, record, reason)
            fresh = _claim(s, group_id, decoded) if decoded else []
            if fresh:
                handler(s, [e for _, e in fresh])
            return len(fresh)
    except AbvocError:
        pass
    with db.session() as s:
        for record, reason in bad:
            _park(s, group_id, record, reason)
        applied = 0
        for record, event in decoded:
            try:
                with s.begin_nested():
                    fresh = _claim(s, group_id, [(record, event)])
                    if fresh:
                        handler(s, [event])
                applied += len(fresh)
            except AbvocError as exc:
                _park(s, group_id, record, exc.message)
        return applied


def next_offsets(records: Iterable[Record]) -> dict[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    for r in records:
        out[r.tp] = max(out.get(r.tp, 0), r.offset + 1)
    return out


class StreamConsumer:
    """Runs the loop for one group member: poll, apply, commit store, commit offsets."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        group_id: str,
        topics: list[str],
        handler: Handler,
        *,
        max_records: int = 1000,
    ) -> None:
        self.db = db
        self.bus = bus
        self.group_id = group_id
        self.topics = topics
        self.handler = handler
        self.max_records = max_records
        self.applied = 0
        self._consumer: Consumer | None = None

    def step(self, timeout_ms: int = 500) -> int:
        """One poll-apply-commit round; returns how many records it read."""
        if self._consumer is None:
            self._consumer = self.bus.consumer(self.group_id, self.topics)
        records = self._consumer.poll(timeout_ms=timeout_ms, max_records=self.max_records)
        if records:
            self.applied += apply_records(self.db, self.group_id, records, self.handler)
            self._consumer.commit(next_offsets(records))
        return len(records)

    def run(self, stop: threading.Event, *, max_backoff_s: float = 5.0) -> None:
        backoff = 0.2
        while not stop.is_set():
            try:
                self.step()
                backoff = 0.2
            except BusUnavailable as exc:
                log.warning("consumer %s: bus unavailable, retrying: %s", self.group_id, exc)
                self.close()
                stop.wait(backoff)
                backoff = min(max_backoff_s, backoff * 2)
        self.close()

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member holds now (empty before its first poll)."""
        consumer = self._consumer
        return consumer.assignment() if consumer is not None else set()

    def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close()
