"""The transactional outbox and its relay.

A producer adds its event to the `outbox` table inside the same transaction as its other writes,
so an accepted request and its event are stored together or not at all. The relay then publishes
unsent rows to the bus in id order and marks them sent. With the bus down, rows simply wait; a row
published but not yet marked may be published again, which consumers absorb by event id.

Several relays may run. On PostgreSQL they take turns: a relay publishes a batch while it holds
a transaction-level advisory lock (one lock, not a lock on each row: row locks cost the server
about 3.5 µs an event, a sixth of the relay's share), marks it sent and commits, which releases
the lock; a relay that finds the lock taken waits as when nothing is pending, and one that dies
releases the lock with its connection. Such a round is on standby for supervision (neither a
success nor a failure: core.supervision), so relays taking turns at a failing bus each stay
failing in /readyz, and back off longer and longer, until a round of their own succeeds. One
publisher at a time also keeps the rows in id order on the bus. A row is marked sent only once
the bus has acknowledged it, never with the claim: retention relies on every copy of an event
having reached the bus before its row's `sent_at` (core.store.retention).
On SQLite a relay first claims its batch in one short write (`claimed_by`, `claimed_until`),
publishes with no transaction open (the embedded bus may write to the same file), then marks the
rows sent; a claim whose relay died expires after `claim_ttl_s` and another relay sends the
rows. A running relay marks a batch sent in the same write as its next claim, so each batch
costs one write transaction, not two (SQLite has one write lock for the API, the relay and the
worker); a batch is marked at most `idle_s` after it was published, and `relay_once` marks
before it returns.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from core import events
from core.bus.base import Bus, BusUnavailable, Producer
from core.store.db import Database, utcnow
from core.store.models import OutboxEvent
from core.store.upsert import in_values, insert_many
from core.supervision import STANDBY, Round, Supervisor

log = logging.getLogger(__name__)
PG_RELAY_LOCK = 0x61627663_72656C79
"""The advisory lock key the relays take turns on (PostgreSQL; "abvc" "rely" in ASCII)."""


def add_event(session: Session, event: dict[str, Any], prefix: str, *,
              validated: bool = False) -> None:
    """Validate `event` and queue it in the caller's transaction (`validated`: see
    :func:`outbox_row`)."""
    add_events(session, [event], prefix, validated=validated)


def outbox_row(event: dict[str, Any], prefix: str, *, validated: bool = False) -> dict[str, Any]:
    """The validated outbox row of an event, ready to insert (raises EventSchemaError).

    `validated` skips the check for an event just returned by `events.make_event`, which has
    checked it already (on the prediction path a second check costs as much as the rest)."""
    if not validated:
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


def add_events(session: Session, batch: list[dict[str, Any]], prefix: str, *,
               validated: bool = False) -> None:
    """Validate every event first (unless `validated`: see :func:`outbox_row`), then queue them
    all in one statement (all or none)."""
    insert_many(session, OutboxEvent.__table__,
                [outbox_row(event, prefix, validated=validated) for event in batch])


def pending_count(db: Database) -> int:
    with db.reading() as s:
        return (
            s.scalar(
                select(func.count()).select_from(OutboxEvent).where(OutboxEvent.sent_at.is_(None))
            )
            or 0
        )


class _Claim(NamedTuple):
    """A batch claimed on SQLite: the token its rows carry in `claimed_by` and its id range."""

    token: str
    first_id: int
    last_id: int


class OutboxRelay:
    """Moves outbox rows to the bus; several may run at once (see the module docstring)."""

    def __init__(self, db: Database, bus: Bus, *, batch_size: int = 2000,
                 claim_ttl_s: float = 60.0) -> None:
        self.db = db
        self.bus = bus
        self.batch_size = batch_size
        self.claim_ttl_s = claim_ttl_s
        self.relay_id = uuid.uuid4().hex
        self.supervisor = Supervisor("relay", db)
        self._producer: Producer | None = None
        self._claims = 0
        self._check_topics = False  # after a failed publish: make sure the topics exist first
        self._published: _Claim | None = None  # SQLite: sent, to be marked with the next claim

    def _pending(self):  # noqa: ANN202 - a Select
        return (
            select(OutboxEvent.id, OutboxEvent.topic, OutboxEvent.key, OutboxEvent.payload)
            .where(OutboxEvent.sent_at.is_(None))
            .order_by(OutboxEvent.id)
            .limit(self.batch_size)
        )

    def _publish(self, rows: list) -> list[int]:
        """Send the rows. After a failed publish the next one first makes sure the batch's
        topics exist (`Bus.ensure_topics`): a topic deleted meanwhile is created again where the
        broker allows it, and one it cannot create is named in the error. A failure names the
        batch's topics, which the client's own message (a delivery timeout) may not."""
        topics = sorted({r.topic for r in rows})
        try:
            if self._check_topics:
                self.bus.ensure_topics(topics)
                self._check_topics = False
            if self._producer is None:
                self._producer = self.bus.producer()
            self._producer.send_many((r.topic, r.key, bytes(r.payload)) for r in rows)
        except BusUnavailable as exc:
            self._check_topics = True
            raise BusUnavailable(f"{exc} [relaying {len(rows)} events to topic"
                                 f"{'s' if len(topics) > 1 else ''} {', '.join(topics)}]") from exc
        return [r.id for r in rows]

    @staticmethod
    def _mark(s: Session, rows: list[int] | _Claim, error: BusUnavailable | None) -> None:
        """Mark the batch sent, or record the failed attempt and release the claim. `rows` are
        the ids (PostgreSQL, one array parameter: an IN list of a batch of ids costs a parse
        each) or the claim (SQLite: its token and id range, three parameters for any size)."""
        if error is None:
            values: dict[str, Any] = {"sent_at": utcnow()}
        else:
            values = {"attempts": OutboxEvent.attempts + 1, "last_error": str(error)[:2000],
                      "claimed_by": None, "claimed_until": None}
        if isinstance(rows, _Claim):
            where = and_(OutboxEvent.id.between(rows.first_id, rows.last_id),
                         OutboxEvent.claimed_by == rows.token)
        else:
            where = in_values(s, OutboxEvent.id, rows)
        # No ORM objects are loaded, so none need synchronising.
        s.execute(update(OutboxEvent).where(where).values(**values),
                  execution_options={"synchronize_session": False})

    def _claim(self) -> tuple[_Claim, list]:
        """Claim the next batch for this relay in one write, which also marks the batch
        published before it sent; rows another relay holds under a live claim are passed over.
        Each claim has a token of its own (the relay's id and a count), so the rows it marks are
        exactly this batch's."""
        now = utcnow()
        self._claims += 1
        token = f"{self.relay_id}:{self._claims}"
        batch = (
            select(OutboxEvent.id)
            .where(OutboxEvent.sent_at.is_(None),
                   or_(OutboxEvent.claimed_until.is_(None), OutboxEvent.claimed_until < now))
            .order_by(OutboxEvent.id)
            .limit(self.batch_size)
        )
        with self.db.session() as s:
            if self._published is not None:
                self._mark(s, self._published, None)
            rows = s.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_(batch.scalar_subquery()))
                .values(claimed_by=token,
                        claimed_until=now + timedelta(seconds=self.claim_ttl_s))
                .returning(OutboxEvent.id, OutboxEvent.topic, OutboxEvent.key,
                           OutboxEvent.payload),
                execution_options={"synchronize_session": False},
            ).all()
        self._published = None
        rows = sorted(rows, key=lambda r: r.id)
        return _Claim(token, rows[0].id if rows else 0, rows[-1].id if rows else 0), rows

    def relay_once(self) -> int:
        """Publish one batch and mark it sent; return how many rows were sent (0 when nothing
        waits, or on PostgreSQL while another relay publishes).

        Raises BusUnavailable after recording the failed attempt on the rows."""
        sent = self._relay_batch()
        self._mark_published()
        return 0 if sent is STANDBY else sent

    def _mark_published(self) -> None:
        """Mark the batch published on SQLite and not marked yet (the next claim would)."""
        if self._published is not None:
            with self.db.session() as s:
                self._mark(s, self._published, None)
            self._published = None

    def _relay_batch(self) -> int | Round:
        """Publish one batch; on SQLite it is marked sent with the next claim. STANDBY: another
        relay is publishing (this one did no work to succeed or fail at)."""
        if self.db.dialect == "postgresql":
            with self.db.session() as s:
                if not s.scalar(select(func.pg_try_advisory_xact_lock(PG_RELAY_LOCK))):
                    return STANDBY
                rows = s.execute(self._pending()).all()
                error = self._relay(s, rows)
        else:
            claim, rows = self._claim()
            error = None
            if not rows and self.supervisor.failing and pending_count(self.db):
                return STANDBY  # rows wait, under another relay's claim
            if rows:
                try:
                    self._publish(rows)
                    self._published = claim
                except BusUnavailable as exc:
                    error = exc
                    with self.db.session() as s:
                        self._mark(s, claim, error)
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
        linger_s: float = 0.01,
        max_backoff_s: float = 5.0,
    ) -> None:
        """Relay until `stop` is set, supervised: any error (the bus down, the store restarting)
        is logged, counted and retried with backoff (see core.supervision)."""
        self.supervisor.max_backoff_s = max_backoff_s

        def step() -> Round | None:
            sent = self._relay_batch()
            if sent is STANDBY or not sent:
                stop.wait(idle_s)
            elif sent < self.batch_size:
                stop.wait(linger_s)
            return STANDBY if sent is STANDBY else None

        self.supervisor.run(stop, step, self.close)

    def close(self) -> None:
        """Mark what was published (when the store answers; otherwise the next claim does, or,
        should this relay stop for good, its claim expires and the rows go out again), then
        drop the producer."""
        try:
            self._mark_published()
        except Exception as exc:  # noqa: BLE001 - the store may be what failed
            log.info("relay %s: marking its last batch sent failed: %s", self.relay_id, exc)
        if self._producer is not None:
            producer, self._producer = self._producer, None
            producer.close()
