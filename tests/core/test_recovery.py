"""The stream recovers by itself: PostgreSQL restarted under load, the relay killed mid-batch.

Store, embedded log and outbox all live on a PostgreSQL server of this test's own. A writer
accepts predictions and corrections (with receipts) the way the API does; a relay process
publishes them; the evaluation worker (`run_worker`, as `abvoc worker` runs it) applies them.
The relay is killed with SIGKILL after publishing a batch and before marking it sent, a second
relay takes over, and PostgreSQL is restarted while events keep coming. Nobody restarts the
worker. In the end the ids of the events applied equal the ids of the events accepted, as sets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from core import events, receipts
from core.bus.embedded import EmbeddedBus
from core.outbox import add_events, pending_count
from core.store import schema
from core.store.db import Database
from core.store.models import (
    BusRecord,
    ComponentHeartbeat,
    Correction,
    OutboxEvent,
    ParkedEvent,
    Prediction,
    ProcessedEvent,
)
from evaluation.worker import GROUP_ID, run_worker
from tests.evaluation.helpers import aggregate_totals
from tests.support.flow import prediction_event, wait_until
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SECRET = "recovery-secret"
PREFIX = "rec"
N = 1500  # predictions; every fifth gets a correction
BATCH = 20
HELD_AFTER = 600  # predictions written before the writer waits for the restart

# The relay as its own process. Its bus lingers after publishing a batch, before the relay marks
# the rows sent, so the test can kill it exactly there.
RELAY = """
import os, signal, threading, time
from core.bus.embedded import EmbeddedBus, EmbeddedProducer
from core.outbox import OutboxRelay
from core.store.db import Database

class LingeringProducer(EmbeddedProducer):
    def send_many(self, records):
        super().send_many(records)
        time.sleep(float(os.environ["LINGER_S"]))

class LingeringBus(EmbeddedBus):
    def producer(self):
        return LingeringProducer(self)

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
db = Database(os.environ["DB_URL"])
OutboxRelay(db, LingeringBus(db), batch_size=100).run(stop, max_backoff_s=1.0)
"""


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own, since the test restarts it."""
    server = PostgresServer().start()
    yield server
    server.stop()


def start_relay(url: str, linger_s: float, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", RELAY], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "DB_URL": url,
                 "LINGER_S": str(linger_s)})


def traffic(lo: int) -> list[dict]:
    """The predictions from `lo` on, and corrections of every fifth prediction of the batch
    before (accepted a batch earlier, as a customer would correct it)."""
    batch = [prediction_event(i, "rec") for i in range(lo, min(lo + BATCH, N))]
    for i in range(max(0, lo - BATCH), lo):
        if i % 5 == 0:
            pid = f"rec-{i}"
            batch.append(events.make_event(
                events.CORRECTION_SUBMITTED, correction_id=f"c-{i}", prediction_id=pid,
                corrected_output="x_{2}", receipt=receipts.sign(SECRET, pid)))
    return batch


class Writer(threading.Thread):
    """Accepts events as the API would, retrying through the outage; `acked` holds the ids
    whose transaction is known to have committed."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self.acked: set[str] = set()
        self.retries = 0
        # The writer holds back the rest of its batches after HELD_AFTER until `go` is set, so
        # however slowly the relays start, PostgreSQL restarts while events are being accepted.
        self.go = threading.Event()

    def run(self) -> None:
        for lo in range(0, N + BATCH, BATCH):
            if lo == HELD_AFTER:
                self.go.wait(240)
            batch = traffic(lo)
            while not self._accept(batch):
                self.retries += 1
                time.sleep(0.2)
            time.sleep(0.15)

    def _accept(self, batch: list[dict]) -> bool:
        ids = {e["event_id"] for e in batch}
        try:
            with self.db.session() as s:
                add_events(s, batch, PREFIX)
        except DBAPIError:
            try:  # the commit may have landed before the connection was cut
                with self.db.session() as s:
                    landed = s.scalar(select(func.count()).select_from(OutboxEvent)
                                      .where(OutboxEvent.event_id.in_(ids)))
            except DBAPIError:
                return False
            if landed != len(ids):
                return False
        self.acked |= ids
        return True


def ids(db: Database, column) -> set[str]:  # noqa: ANN001
    with db.session() as s:
        return set(s.scalars(select(column)))


def published_unmarked(db: Database) -> bool:
    """A relay has published a batch and not yet marked it sent (the bus is read first)."""
    with db.session() as s:
        on_bus = s.scalar(select(func.count()).select_from(BusRecord))
        sent = s.scalar(select(func.count()).select_from(OutboxEvent)
                        .where(OutboxEvent.sent_at.is_not(None)))
    return on_bus > sent


def worker_restarts() -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect() if metric.name == "abvoc_component_restarts"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("component") == "worker"
    )


def test_restart_postgres_and_kill_the_relay_mid_batch(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    restarts_before = worker_restarts()
    url = own_postgres.create_database()
    db = Database(url)
    schema.upgrade(db)
    worker_db = Database(url)
    stop = threading.Event()
    worker = threading.Thread(
        target=run_worker, args=(worker_db, EmbeddedBus(worker_db), PREFIX, stop),
        kwargs={"secret": SECRET})
    writer = Writer(Database(url))
    log = tmp_path / "relay.log"
    relay = start_relay(url, 1.0, log)
    worker.start()
    writer.start()
    try:
        wait_until(lambda: published_unmarked(db), 120, "the relay to publish a batch")
        relay.send_signal(signal.SIGKILL)  # mid-batch: published, not marked
        relay.wait(30)
        relay = start_relay(url, 0.0, log)
        wait_until(lambda: len(ids(db, ProcessedEvent.event_id)) >= 400, 120, "400 applied")
        writer.go.set()
        under_load = writer.is_alive()
        own_postgres.restart(down_s=1.0)
        writer.join(300)
        accepted = ids(db, OutboxEvent.event_id)
        wait_until(lambda: ids(db, ProcessedEvent.event_id) >= accepted, 240,
                   "every accepted event to be applied")
        time.sleep(1.5)  # a heartbeat after recovery
    finally:
        stop.set()
        writer.go.set()
        writer.join(60)
        worker.join(60)
        relay.terminate()
        relay.wait(30)
    assert under_load, "PostgreSQL must restart while events are still being accepted"
    assert not worker.is_alive()
    restarts = worker_restarts() - restarts_before
    assert restarts >= 1, "the worker met the outage and restarted itself"
    applied = ids(db, ProcessedEvent.event_id)
    stored = ids(db, Prediction.event_id) | ids(db, Correction.event_id)
    assert writer.acked <= accepted
    assert len(accepted) == N + N // 5
    assert applied == accepted
    assert stored == accepted
    assert ids(db, ParkedEvent.id) == set()
    assert pending_count(db) == 0
    totals = aggregate_totals(db)
    assert totals["predictions"] == N and totals["corrected"] == N // 5
    with db.session() as s:
        on_bus = s.scalar(select(func.count()).select_from(BusRecord))
        groups = set(s.scalars(select(ProcessedEvent.group_id)))
        beats = s.execute(select(ComponentHeartbeat.component, ComponentHeartbeat.restarts,
                                 ComponentHeartbeat.failing)).all()
    assert on_bus > len(accepted), "the killed relay's batch was published again (a replay)"
    assert groups == {GROUP_ID}
    print(f"accepted {len(accepted)}, applied {len(applied)}, on the bus {on_bus} "
          f"(replayed {on_bus - len(accepted)}), writer retries {writer.retries}, "
          f"worker restarts {restarts:.0f}, heartbeats {beats}")
    for handle in (db, worker_db, writer.db):
        handle.dispose()
