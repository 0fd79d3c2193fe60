"""Retention: `prune` deletes only what no reader needs, and never an event id a copy of its
event could still bring back (that would count the event twice)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy import delete, select

from app.cli import main
from core.bus.base import Record
from core.parking import park, parked_event_id
from core.store import schema
from core.store.db import Database, utcnow
from core.store.models import (
    BusRecord,
    ConsumerOffset,
    OutboxEvent,
    ParkedEvent,
    PredictionInput,
    ProcessedEvent,
)
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
        # The log's newest record (6, 9 days old, read by all) stays: offsets are ids.
        assert set(s.scalars(select(BusRecord.id))) == {5, 6}
        assert set(s.scalars(select(OutboxEvent.event_id))) == {"sent-lately"}
        assert set(s.scalars(select(ProcessedEvent.event_id))) == {"sent-lately", "recent"}


def test_db_prune_command(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABVOC_DATABASE_URL", database_url)
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    with Database(database_url) as db:
        _fill(db)
        # Served inputs: one past the input retention before the oldest event not yet applied
        # (the "never-sent" row, 10.5 days old: its correction may name a prediction up to 72
        # hours older), one within it.
        with db.session() as s:
            for pid, hours in (("old", 10.5 * 24 + 80), ("new", 10.5 * 24 + 1)):
                s.add(PredictionInput(prediction_id=pid, input_hash=f"h-{pid}", kind="image",
                                      data=b"png", created_at=NOW - timedelta(hours=hours)))
    result = runner.invoke(main, ["db", "prune", "--retention-days", "7", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["bus_log"] == 2
    # ABVOC_INPUT_RETENTION_HOURS (72) applies here too, not only under `abvoc up`.
    assert json.loads(result.output)["kept_inputs"] == 1
    with Database(database_url) as db, db.session() as s:
        assert set(s.scalars(select(PredictionInput.prediction_id))) == {"new"}
    refused = runner.invoke(main, ["db", "prune", "--retention-days", "0"])
    assert refused.exit_code != 0 and "retention" in refused.output


def test_input_retention_0_prunes_every_kept_input(database_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`0` keeps none: inputs kept before the setting changed stayed for ever, since a prune
    with 0 hours deleted nothing (and reported 0 pruned)."""
    monkeypatch.setenv("ABVOC_DATABASE_URL", database_url)
    monkeypatch.setenv("ABVOC_INPUT_RETENTION_HOURS", "0")
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    with Database(database_url) as db, db.session() as s:
        for pid, hours in (("old", 80), ("new", 0.01)):
            s.add(PredictionInput(prediction_id=pid, input_hash=f"h-{pid}", kind="image",
                                  data=b"png", created_at=NOW - timedelta(hours=hours)))
    result = runner.invoke(main, ["db", "prune", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["kept_inputs"] == 2
    with Database(database_url) as db, db.session() as s:
        assert s.scalar(select(sa.func.count()).select_from(PredictionInput)) == 0


def test_a_parked_copy_keeps_its_event_id_until_it_is_no_longer_parked(db: Database) -> None:
    """A copy parked by one worker (say, with the wrong key) and a copy applied by another: once
    the applied id is old, pruning it would let `abvoc events replay` apply the event again."""
    event = json.dumps({"event_id": "parked-copy", "type": "CorrectionSubmitted"}).encode()
    with db.session() as s:
        _outbox(s, "parked-copy", 10.5, 10)
        s.add(ProcessedEvent(group_id="evaluation", event_id="parked-copy",
                             processed_at=NOW - 10 * DAY))
        park(s, "evaluation", Record("t", 0, 4, "k", event), "no valid receipt")
        # Parked by another group: that group's replay meets its own ids, not this one's.
        park(s, "audit", Record("t", 0, 4, "k", event), "no valid receipt")
        s.add(ProcessedEvent(group_id="audit", event_id="elsewhere",
                             processed_at=NOW - 10 * DAY))
    assert prune(db, timedelta(days=7), now=NOW).processed_events == 1
    with db.session() as s:
        assert set(s.execute(select(ProcessedEvent.group_id, ProcessedEvent.event_id))) == \
            {("evaluation", "parked-copy")}
        assert set(s.scalars(select(ParkedEvent.event_id))) == {"parked-copy"}
        s.execute(delete(ParkedEvent).where(ParkedEvent.group_id == "evaluation"))
    assert prune(db, timedelta(days=7), now=NOW).processed_events == 1


def test_a_payload_names_its_event_id_only_when_it_can() -> None:
    assert parked_event_id(b'{"event_id": "e-1", "type": "x"}') == "e-1"
    for payload in (b"not json", b'{"event_id": 7}', b'["e-1"]', b'{"event_id": ""}',
                    b'{"event_id": "' + b"e" * 65 + b'"}', b'{"event_id": "cut sh'):
        assert parked_event_id(payload) is None, payload


def test_the_migration_gives_rows_parked_before_it_their_event_ids(
        empty_database_url: str) -> None:
    database = Database(empty_database_url)
    try:
        schema.upgrade(database, "0019")
        table = sa.table("parked_events", *(sa.column(c) for c in (
            "group_id", "topic", "partition", "offset", "payload", "payload_size", "reason",
            "created_at")))
        with database.session() as s:
            for offset, payload in enumerate([b'{"event_id": "old-1"}', b"garbage"]):
                s.execute(table.insert().values(
                    group_id="evaluation", topic="t", partition=0, offset=offset,
                    payload=payload, payload_size=len(payload), reason="r", created_at=NOW))
        schema.upgrade(database)
        with database.session() as s:
            assert sorted(s.execute(select(ParkedEvent.offset, ParkedEvent.event_id))) == \
                [(0, "old-1"), (1, None)]
    finally:
        database.dispose()


def test_events_after_a_prune_of_the_whole_log_are_still_read(db: Database) -> None:
    """Every group had read the whole log and all of it was old: the newest record stays, so a
    new event takes an id above every committed offset. (Deleted, SQLite gave the next event
    id 1, below the offsets: it was never read, and a later prune deleted it unread.)"""
    from core.bus.embedded import EmbeddedBus
    from core.stream import next_offsets

    bus = EmbeddedBus(db)
    bus.producer().send_many(("t", f"k{i}", f"old-{i}".encode()) for i in range(6))
    reader = bus.consumer("g", ["t"])
    old = reader.poll(timeout_ms=500, max_records=100)
    assert len(old) == 6
    reader.commit(next_offsets(old))
    reader.close()
    assert prune(db, timedelta(seconds=1), now=utcnow() + DAY).bus_log == 5
    bus.producer().send_many(("t", f"k{i}", f"new-{i}".encode()) for i in range(4))
    again = bus.consumer("g", ["t"])
    got = [r.value for r in again.poll(timeout_ms=1000, max_records=100)]
    again.close()
    assert sorted(got) == sorted(f"new-{i}".encode() for i in range(4))
