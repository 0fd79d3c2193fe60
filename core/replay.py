"""Replaying parked events through the consumer's own apply path, once their cause is fixed.

A correction parked by a worker that had the wrong ABVOC_SECRET_KEY, or an event a since-fixed
bug refused, is still in `parked_events` with its payload. Replaying decodes and checks it
again and applies it exactly as the worker does (:func:`core.stream.apply_parking`): its event
id is claimed in `processed_events` in the same transaction, so an event applied before (by a
replay, or by the stream) is never counted twice. A replayed row is removed once its event is
applied (or found applied); one that fails again stays parked with its new reason. A row whose
payload was cut (over 64 KiB) cannot be replayed and stays.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import delete, select, update

from core.bus.base import Record
from core.health import safe_text
from core.store.db import Database
from core.store.models import ParkedEvent
from core.stream import POLL_RECORDS, Check, Handler, Prepare, apply_parking, read_batch


class ApplyPath(Protocol):
    """What a replay needs of a consumer (a StreamConsumer has it all)."""

    group_id: str
    handler: Handler
    check: Check | None
    prepare: Prepare | None


def replay_parked(db: Database, consumer: ApplyPath, *, topic: str | None = None,
                  reason_contains: str | None = None, parked_id: int | None = None,
                  chunk: int = POLL_RECORDS) -> dict[str, int]:
    """Apply again the consumer's group's parked events that match; return how many were
    `replayed`, newly `applied`, found `already_applied`, `still_parked` (failed again), and
    `truncated` (payload cut, left parked)."""
    query = select(ParkedEvent).where(ParkedEvent.group_id == consumer.group_id)
    if topic is not None:
        query = query.where(ParkedEvent.topic == topic)
    if reason_contains is not None:
        query = query.where(ParkedEvent.reason.contains(reason_contains, autoescape=True))
    if parked_id is not None:
        query = query.where(ParkedEvent.id == parked_id)
    totals = dict.fromkeys(("replayed", "applied", "already_applied", "still_parked",
                            "truncated"), 0)
    after = 0
    while True:
        with db.reading() as s:
            rows = s.scalars(query.where(ParkedEvent.id > after).order_by(ParkedEvent.id)
                             .limit(chunk)).all()
            found = [(r.id, r.topic, r.partition, r.offset, bytes(r.payload), r.payload_size)
                     for r in rows]
        if not found:
            return totals
        after = found[-1][0]
        ids: dict[tuple[str, int, int], int] = {}
        records = []
        for row_id, t, partition, offset, payload, size in found:
            if size is not None and size > len(payload):
                totals["truncated"] += 1
                continue
            ids[(t, partition, offset)] = row_id
            records.append(Record(t, partition, offset, None, payload))
        batch = read_batch(records, consumer.check, consumer.prepare)
        applied, parked = apply_parking(db, consumer.group_id, batch, consumer.handler,
                                        count=False)
        failed = {(r.topic, r.partition, r.offset): reason for r, reason in parked}
        with db.session() as s:
            for key, reason in failed.items():
                s.execute(update(ParkedEvent).where(ParkedEvent.id == ids[key])
                          .values(reason=safe_text(reason, 2000)))
            done = [row_id for key, row_id in ids.items() if key not in failed]
            if done:
                s.execute(delete(ParkedEvent).where(ParkedEvent.id.in_(done)))
        totals["replayed"] += len(records)
        totals["applied"] += applied
        totals["already_applied"] += len(done) - applied
        totals["still_parked"] += len(failed)
