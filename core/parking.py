"""Parked events: records a consumer could not apply, kept with their reason, counted, listed.

A parked event is kept in `parked_events` (payload bounded), counted in
``abvoc_events_parked_total{topic, reason}`` (the reason as a small fixed set of kinds, so a
stream of odd payloads cannot make new label sets), and listed by `abvoc events parked`.
`abvoc events replay` (:mod:`core.replay`) applies them again once their cause is fixed.

The counter lives in the default registry like the supervisor's restarts, so with
PROMETHEUS_MULTIPROC_DIR set (`abvoc up`) the API's /metrics sums what every worker parked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import Counter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.bus.base import Record
from core.health import Heartbeat, safe_text
from core.payload_ids import payload_id
from core.store.db import Database, utcnow
from core.store.models import ParkedEvent
from core.store.upsert import dialect_insert

log = logging.getLogger(__name__)

PARKED_PAYLOAD_BYTES = 64 * 1024
"""A parked event keeps at most this much of its payload (and its original size)."""

PARKED = Counter("abvoc_events_parked", "Events parked because they could not be applied",
                 ["topic", "reason"])

RECEIPT = "receipt"
KINDS = (RECEIPT, "not_json", "cannot_apply", "invalid")
"""The reason label's values: a bad or unverifiable receipt, a payload that is not JSON, an
event the handler or the store refused, and anything else the schema or a check refused."""


def reason_kind(reason: str) -> str:
    """The metric label for a parked event's reason (one of KINDS)."""
    if "receipt" in reason:
        return RECEIPT
    if reason.startswith("not JSON"):
        return "not_json"
    if reason.startswith("cannot apply"):
        return "cannot_apply"
    return "invalid"


def parked_event_id(payload: bytes) -> str | None:
    """The event id a payload names, if it is a JSON object with a string id of a stored id's
    length; None otherwise (a payload that is not JSON, or cut short)."""
    return payload_id(payload, "event_id")


def park(session: Session, group_id: str, record: Record, reason: str) -> bool:
    """Keep `record` with its reason; a record parked before keeps its first row. True when
    this parked it: a batch read again (a worker that stopped before committing its offsets, a
    rebalance) parks its records again, and only a first parking counts."""
    log.warning("parked %s[%d]@%d for group %s: %s", record.topic, record.partition,
                record.offset, group_id, safe_text(reason, 500))
    table = ParkedEvent.__table__
    return session.execute(dialect_insert(session, table).values(
        group_id=group_id,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        payload=record.value[:PARKED_PAYLOAD_BYTES],
        payload_size=len(record.value),
        reason=safe_text(reason, 2000),
        created_at=utcnow(),
        event_id=parked_event_id(record.value),
    ).on_conflict_do_nothing(index_elements=["group_id", "topic", "partition", "offset"])
        .returning(table.c.id)).first() is not None


def count_parked(parked: Iterable[tuple[Record, str]]) -> None:
    """Count events whose first parking was committed (a rolled-back attempt counts nothing,
    nor a record parked before: see :func:`park`)."""
    for record, reason in parked:
        PARKED.labels(record.topic, reason_kind(reason)).inc()


def parked_counts(db: Database) -> list[dict[str, Any]]:
    """How many events are parked, by group, topic and reason kind, the largest first."""
    with db.reading() as s:
        rows = s.execute(select(ParkedEvent.group_id, ParkedEvent.topic, ParkedEvent.reason,
                                func.count()).group_by(ParkedEvent.group_id, ParkedEvent.topic,
                                                       ParkedEvent.reason)).all()
    counts: dict[tuple[str, str, str], int] = {}
    for group_id, topic, reason, n in rows:
        key = (group_id, topic, reason_kind(reason))
        counts[key] = counts.get(key, 0) + n
    return [{"group_id": g, "topic": t, "reason": k, "count": n}
            for (g, t, k), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def newest_parked(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    """The `limit` most recently parked events, with where they were read and why parked."""
    with db.reading() as s:
        rows = s.scalars(select(ParkedEvent)
                         .order_by(ParkedEvent.created_at.desc(), ParkedEvent.id.desc())
                         .limit(limit)).all()
        return [{"id": r.id, "group_id": r.group_id, "topic": r.topic,
                 "partition": r.partition, "offset": r.offset, "event_id": r.event_id,
                 "payload_size": r.payload_size,
                 "reason": r.reason, "created_at": r.created_at} for r in rows]


class ReceiptAlarm:
    """Says that a worker's secret key is probably wrong: once in a while in one warning line,
    and for as long as it lasts in the worker's heartbeat, which /readyz reads.

    A worker started with another ABVOC_SECRET_KEY than the API's refuses every receipt the API
    issued, so each correction and outcome it reads is parked; one line per event drowns that
    cause, and the worker otherwise beats as healthy. When receipt failures are at least
    `min_parked` and `share` of a batch's records on their topics, this warns (at most once
    every `every_s`) and sets the heartbeat's note. Batches too small to judge alone are
    judged together once `min_parked` records were read on topics where receipts failed; the
    note goes when such a judgement finds most receipts valid."""

    def __init__(self, component: str, *, min_parked: int = 5, share: float = 0.5,
                 every_s: float = 600.0, clock: Callable[[], float] = time.monotonic,
                 heartbeat: Heartbeat | None = None) -> None:
        self.component = component
        self.min_parked = min_parked
        self.share = share
        self.every_s = every_s
        self.clock = clock
        self.heartbeat = heartbeat
        self._quiet_until = float("-inf")
        self._topics: set[str] = set()  # where receipts failed since this worker started
        self._failed = self._read = 0  # not yet judged (see the class docstring)

    def check(self, records: list[Record], parked: list[tuple[Record, str]]) -> bool:
        """Judge this batch (and note it, see the class docstring); warn if it looks like a
        key mismatch. True when it warned."""
        failed = [r for r, reason in parked if reason_kind(reason) == RECEIPT]
        topics = {r.topic for r in failed}
        read = sum(1 for r in records if r.topic in topics)
        mismatch = len(failed) >= self.min_parked and len(failed) >= self.share * read
        self._judge(records, len(failed), topics, mismatch)
        now = self.clock()
        if not mismatch or now < self._quiet_until:
            return False
        self._quiet_until = now + self.every_s
        log.warning(
            "%s parked %d of %d records read from %s for lack of a valid receipt: its "
            "ABVOC_SECRET_KEY probably differs from the API's; start it with the API's key, "
            "then run `abvoc events replay --reason-contains receipt`", self.component,
            len(failed), read, ", ".join(sorted(topics)))
        return True

    def _judge(self, records: list[Record], failed: int, topics: set[str],
               mismatch: bool) -> None:
        self._topics |= topics
        self._failed += failed
        self._read += sum(1 for r in records if r.topic in self._topics)
        if not mismatch and self._read < self.min_parked:
            return
        if mismatch or self._failed >= self.share * self._read:
            self._note(f"parks most of what it reads for lack of a valid receipt ({self._failed} "
                       f"of {self._read} records lately, from {', '.join(sorted(self._topics))}): "
                       "its ABVOC_SECRET_KEY probably differs from the API's; restart it with "
                       "the API's key, then run `abvoc events replay --reason-contains receipt`")
        else:
            self._note(None)
        self._failed = self._read = 0

    def _note(self, note: str | None) -> None:
        if self.heartbeat is not None:
            self.heartbeat.note = note
