"""Retention: `prune` deletes only what no reader needs, and never an event id a copy of its
event could still bring back (that would count the event twice)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from app.cli import main
from core.store.db import Database, utcnow
from core.store.models import BusRecord, ConsumerOffset, OutboxEvent, ProcessedEvent
from core.store.retention import prune

NOW = utcnow()
DAY = timedelta(days=1)


def _outbox(s, event_id: str, created_days: float, sent_days: float | None) -> None:  # noqa: ANN001
    s.add(OutboxEvent(event_id=event_id, topic="t", key="k", payload=b"{}",
                      created_at=NOW - created_days * DAY,
                      sent_at=None if sent_days is None else NOW - sent_days * DAY, attempts=1))


def _fill(db: Database) -> None:
    with db.session() as s:
        for i, days in enumerate([12, 12, 9, 8, 0], start=1):
            s.add(BusRecord(id=i, topic="t", partition=0, key="k", value=b"{}",
                            created_at=NOW - days * DAY))
        s.add(BusRecord(id=6, topic="t", partition=1, key="k", value=b"{}",
                        created_at=NOW - 9 * DAY))
        # Group g has read p0 up to offset 3 and never p1; group h has read p0 up to 5.
        s.add(ConsumerOffset(group_id="g", topic="t", partition=0, next_offset=3,
                             updated_at=NOW))
        s.add(ConsumerOffset(group_id="h", topic="t", partition=0, next_offset=5,
                             updated_at=NOW))
        s.add(ConsumerOffset(group_id="h", topic="t", partition=1, next_offset=7,
                             updated_at=NOW))
        _outbox(s, "sent-long-ago", 10.5, 10)
        _outbox(s, "never-sent", 10.5, None)  # may be published (again) any time
        _outbox(s, "republished", 10.5, 8.5)  # sent again after a copy was applied
        _outbox(s, "sent-lately", 1.5, 1)
        for event_id, days in [("sent-long-ago", 10), ("never-sent", 10), ("republished", 10),
                               ("sent-lately", 1), ("from-elsewhere", 10), ("recent", 1)]:
            s.add(ProcessedEvent(group_id="evaluation", event_id=event_id,
                                 processed_at=NOW - days * DAY))


def test_prune_keeps_what_may_still_be_read(db: Database) -> None:
    _fill(db)
    pruned = prune(db, timedelta(days=7), now=NOW)
    with db.session() as s:
        records = set(s.scalars(select(BusRecord.id)))
        outbox = set(s.scalars(select(OutboxEvent.event_id)))
        processed = set(s.scalars(select(ProcessedEvent.event_id)))
    # p0: below both groups' offsets and old: 1, 2. Record 3 (9 days old) is unread by g, and
    # so is p1's record 6 (g has no offset there): the oldest records some group may still get
    # were appended 9 days ago.
    assert records == {3, 4, 5, 6}
    assert abs(pruned.deliverable_since - (NOW - 9 * DAY)) < timedelta(seconds=1)
    assert outbox == {"never-sent", "republished", "sent-lately"}
    # "republished" was sent after record 3 was appended: a copy may still be in the unread
    # part of the log, so its id must stay or the worker would apply it twice.
    assert processed == {"never-sent", "republished", "sent-lately", "recent"}
    assert (pruned.outbox, pruned.bus_log, pruned.processed_events) == (1, 2, 2)
    # Nothing left to prune: a second run deletes nothing.
    again = prune(db, timedelta(days=7), now=NOW)
    assert (again.outbox, again.bus_log, again.processed_events) == (0, 0, 0)


def test_once_every_group_has_read_the_log_everything_old_goes(db: Database) -> None:
    _fill(db)
    with db.session() as s:
        for row in s.scalars(select(ConsumerOffset)):
            row.next_offset = 7
        s.add(ConsumerOffset(group_id="g", topic="t", partition=1, next_offset=7,
                             updated_at=NOW))
        s.get(OutboxEvent, 2).sent_at = NOW - 10 * DAY
    prune(db, timedelta(days=7), now=NOW)
    with db.session() as s:
        assert set(s.scalars(select(BusRecord.id))) == {5}
        assert set(s.scalars(select(OutboxEvent.event_id))) == {"sent-lately"}
        assert set(s.scalars(select(ProcessedEvent.event_id))) == {"sent-lately", "recent"}


def test_db_prune_command(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABVOC_DATABASE_URL", database_url)
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    with Database(database_url) as db:
        _fill(db)
    result = runner.invoke(main, ["db", "prune", "--retention-days", "7", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["bus_log"] == 2
    refused = runner.invoke(main, ["db", "prune", "--retention-days", "0"])
    assert refused.exit_code != 0 and "retention" in refused.output
