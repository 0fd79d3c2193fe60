"""The consume loop every event consumer shares.

Commit order, per batch of records:
1. decode and validate each record; a record that fails is parked with its reason, not dropped;
2. skip events whose id this group has already applied (`processed_events`);
3. apply the rest and record their ids, all in one store transaction, and commit it;
4. only then commit the bus offsets.
A crash between 3 and 4 replays the batch, and step 2 makes the replay a no-op.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import events
from core.bus.base import Bus, BusUnavailable, Consumer, Record, TopicPartition
from core.errors import AbvocError, EventSchemaError
from core.store.db import Database, utcnow
from core.store.models import ParkedEvent, ProcessedEvent
from core.store.upsert import insert_ignore

log = logging.getLogger(__name__)

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


def _fresh(session: Session, group_id: str, batch: list[tuple[Record, dict]]) -> list:
    ids = [e["event_id"] for _, e in batch]
    seen = set(
        session.scalars(
            select(ProcessedEvent.event_id).where(
                ProcessedEvent.group_id == group_id, ProcessedEvent.event_id.in_(ids)
            )
        )
    )
    fresh = []
    for record, event in batch:
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            fresh.append((record, event))
    return fresh


def _mark(session: Session, group_id: str, applied: list[tuple[Record, dict]]) -> None:
    now = utcnow()
    session.execute(
        ProcessedEvent.__table__.insert(),
        [
            {"group_id": group_id, "event_id": e["event_id"], "processed_at": now}
            for _, e in applied
        ],
    )


def apply_records(db: Database, group_id: str, records: list[Record], handler: Handler) -> int:
    """Apply a batch exactly once in effect; return how many events were newly applied."""
    with db.session() as s:
        decoded: list[tuple[Record, dict]] = []
        for record in records:
            try:
                decoded.append((record, events.decode(record.value)))
            except EventSchemaError as exc:
                _park(s, group_id, record, exc.message)
        fresh = _fresh(s, group_id, decoded)
        if not fresh:
            return 0
        try:
            with s.begin_nested():
                handler(s, [e for _, e in fresh])
                _mark(s, group_id, fresh)
            return len(fresh)
        except AbvocError:
            pass
        # One event spoiled the batch: apply one by one so only the bad one is parked.
        applied = 0
        for record, event in fresh:
            try:
                with s.begin_nested():
                    handler(s, [event])
                    _mark(s, group_id, [(record, event)])
                applied += 1
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

    def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close()
