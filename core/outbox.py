"""The transactional outbox and its relay.

A producer adds its event to the `outbox` table inside the same transaction as its other writes,
so an accepted request and its event are stored together or not at all. The relay then publishes
unsent rows to the bus in id order and marks them sent. With the bus down, rows simply wait; a row
published but not yet marked may be published again, which consumers absorb by event id.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core import events
from core.bus.base import Bus, BusUnavailable, Producer
from core.store.db import Database, utcnow
from core.store.models import OutboxEvent

log = logging.getLogger(__name__)


def add_event(session: Session, event: dict[str, Any], prefix: str) -> None:
    """Validate `event` and queue it in the caller's transaction."""
    add_events(session, [event], prefix)


def outbox_row(event: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The validated outbox row of an event, ready to insert (raises EventSchemaError)."""
    events.validate_event(event)
    where = events.route(event, prefix)
    return {
        "event_id": event["event_id"],
        "topic": where.topic,
        "key": where.key,
        "payload": events.encode(event),
        "created_at": utcnow(),
        "attempts": 0,
    }


def add_events(session: Session, batch: list[dict[str, Any]], prefix: str) -> None:
    """Validate every event first, then queue them all in one statement (all or none)."""
    rows = [outbox_row(event, prefix) for event in batch]
    if rows:
        session.execute(OutboxEvent.__table__.insert(), rows)


def pending_count(db: Database) -> int:
    with db.session() as s:
        return (
            s.scalar(
                select(func.count()).select_from(OutboxEvent).where(OutboxEvent.sent_at.is_(None))
            )
            or 0
        )


class OutboxRelay:
    """Moves outbox rows to the bus. Several relays may run: on PostgreSQL each locks its batch
    with SKIP LOCKED; on SQLite writers are serialised by the database."""

    def __init__(self, db: Database, bus: Bus, *, batch_size: int = 1000) -> None:
        self.db = db
        self.bus = bus
        self.batch_size = batch_size
        self._producer: Producer | None = None

    def _pending(self):  # noqa: ANN202 - a Select
        return (
            select(OutboxEvent.id, OutboxEvent.topic, OutboxEvent.key, OutboxEvent.payload)
            .where(OutboxEvent.sent_at.is_(None))
            .order_by(OutboxEvent.id)
            .limit(self.batch_size)
        )

    def _publish(self, rows: list) -> list[int]:
        if self._producer is None:
            self._producer = self.bus.producer()
        self._producer.send_many((r.topic, r.key, bytes(r.payload)) for r in rows)
        return [r.id for r in rows]

    @staticmethod
    def _mark(s: Session, ids: list[int], error: BusUnavailable | None) -> None:
        if error is None:
            values: dict[str, Any] = {"sent_at": utcnow()}
        else:
            values = {"attempts": OutboxEvent.attempts + 1, "last_error": str(error)[:2000]}
        s.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(**values))

    def relay_once(self) -> int:
        """Publish one batch; return how many rows were sent (0 when nothing waits).

        Raises BusUnavailable after recording the failed attempt on the rows."""
        if self.db.dialect == "postgresql":
            # Row locks with SKIP LOCKED let several relays share the outbox safely.
            with self.db.session() as s:
                rows = s.execute(self._pending().with_for_update(skip_locked=True)).all()
                error = self._relay(s, rows)
        else:
            # SQLite has one writer at a time: hold no transaction while publishing, since the
            # embedded bus may be writing to this same file.
            with self.db.session() as s:
                rows = s.execute(self._pending()).all()
            with self.db.session() as s:
                error = self._relay(s, rows)
        if error is not None:
            raise error
        return len(rows)

    def _relay(self, s: Session, rows: list) -> BusUnavailable | None:
        if not rows:
            return None
        ids = [r.id for r in rows]
        try:
            self._publish(rows)
        except BusUnavailable as exc:
            self._mark(s, ids, exc)
            return exc
        self._mark(s, ids, None)
        return None

    def run(
        self,
        stop: threading.Event,
        *,
        idle_s: float = 0.05,
        max_backoff_s: float = 5.0,
    ) -> None:
        """Relay until `stop` is set, backing off while the bus is unavailable."""
        backoff = idle_s
        while not stop.is_set():
            try:
                sent = self.relay_once()
                backoff = idle_s
            except BusUnavailable as exc:
                log.warning("outbox relay: bus unavailable, retrying in %.1fs: %s", backoff, exc)
                stop.wait(backoff)
                backoff = min(max_backoff_s, backoff * 2)
                continue
            if not sent:
                stop.wait(idle_s)
        self.close()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None
