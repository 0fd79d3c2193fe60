"""The consume loop reads the next batch while the previous one is stored, and still commits a
batch's offsets only after its transaction, in order, with every event applied once."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import events
from core.bus.base import BusUnavailable, Consumer, Record, TopicPartition
from core.bus.embedded import EmbeddedBus
from core.store import schema
from core.store.db import Database
from core.store.models import ProcessedEvent
from core.stream import StreamConsumer
from tests.support.flow import prediction_event, wait_until

N, BATCH = 60, 10


class _Watched(Consumer):
    """The real embedded-log consumer, with its commits logged (and the very first refused)."""

    refused = False

    def __init__(self, inner: Consumer, log: list[tuple[str, Any]]) -> None:
        self.inner, self.log = inner, log

    def poll(self, timeout_ms: int = 1000, max_records: int = 500) -> list[Record]:
        records = self.inner.poll(timeout_ms, max_records)
        if records:
            self.log.append(("polled", records[0].offset))
        return records

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        if not _Watched.refused:
            _Watched.refused = True
            self.log.append(("commit refused", None))
            raise BusUnavailable("the first commit is refused")
        self.log.append(("commit", sum(offsets.values()) if offsets else None))
        self.inner.commit(offsets)

    def assignment(self) -> set[TopicPartition]:
        return self.inner.assignment()

    def close(self) -> None:
        self.inner.close()


def _base(log: list[tuple[str, Any]]) -> int:
    """The log's first offset (the embedded log counts from 1)."""
    return min((v for k, v in log if k == "polled"), default=0)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_reading_overlaps_storing_and_offsets_follow_the_store(db: Database) -> None:
    schema.upgrade(db)
    bus = EmbeddedBus(db, partitions=1)
    topic = "pipeline.predictions"
    bus.ensure_topics([topic])
    producer = bus.producer()
    producer.send_many((topic, "k", events.encode(prediction_event(i))) for i in range(N))
    log: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def note(what: str, value: Any = None) -> None:
        with lock:
            log.append((what, value))

    def prepare(batch: list[dict]) -> None:
        note("read", batch[0]["prediction_id"])

    def handler(session: Session, batch: list[dict], prepared: Any = None) -> None:
        note("store begins", batch[0]["prediction_id"])
        time.sleep(0.3)  # long enough for the loop to poll and read the next batch meanwhile
        note("store ends", batch[0]["prediction_id"])

    make = bus.consumer
    bus.consumer = lambda group, topics: _Watched(make(group, topics), log)  # type: ignore
    worker = StreamConsumer(db, bus, "g", [topic], handler, prepare=prepare, max_records=BATCH)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"max_backoff_s": 0.2})
    thread.start()
    try:
        wait_until(lambda: ("commit", _base(log) + N) in log, 60, "the last offset's commit")
    finally:
        stop.set()
        thread.join()

    kinds = [k for k, _ in log]
    # A batch was read while the one before it was in its transaction.
    steps = [k for k in kinds if k in ("read", "store begins", "store ends")]
    assert any(steps[i:i + 3] == ["store begins", "read", "store ends"]
               for i in range(len(steps))), log
    # Every commit comes after the transaction of the batch it commits, and none goes back.
    base, stored, committed = _base(log), 0, [0]
    for kind, value in log:
        if kind == "store ends":  # events up to this batch's end are in the store
            stored = max(stored, int(value.split("-")[1]) + BATCH)
        elif kind == "commit":
            assert committed[-1] <= value <= base + stored, log
            committed.append(value)
    # The refused commit made the loop start again from the committed offsets: the batch it
    # stored was read again, and its claimed ids kept it from counting twice.
    assert "commit refused" in kinds
    with db.reading() as s:
        assert s.scalar(select(func.count()).select_from(ProcessedEvent)) == N
    assert worker.applied == N
