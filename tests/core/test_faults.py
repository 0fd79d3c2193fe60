"""Fault tests against the real broker: an outage mid-stream and a consumer killed with SIGKILL.

Both must end with every accepted event in the store exactly once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import events
from core.bus.embedded import EmbeddedBus
from core.bus.kafka import KafkaBus
from core.outbox import OutboxRelay, pending_count
from core.store import schema
from core.store.db import Database
from core.store.models import OnlineAggregate, ProcessedEvent
from evaluation import sketch
from evaluation.worker import GROUP_ID, make_worker
from tests.support.flow import count_predictions, wait_until, write_outbox
from tests.support.kafka import KafkaBroker

N = 5000
pytestmark = pytest.mark.slow


@pytest.fixture
def own_broker() -> Iterator[KafkaBroker]:
    """A broker of this test's own, since the test kills it."""
    broker = KafkaBroker().start()
    yield broker
    broker.kill()
    shutil.rmtree(broker.workdir, ignore_errors=True)


def assert_exactly_once(db: Database) -> None:
    assert count_predictions(db) == (N, N)
    with db.session() as s:
        applied = s.scalar(
            select(func.count())
            .select_from(ProcessedEvent)
            .where(ProcessedEvent.group_id == GROUP_ID)
        )
        totals = dict(
            s.execute(
                select(OnlineAggregate.metric, func.sum(OnlineAggregate.n)).group_by(
                    OnlineAggregate.metric
                )
            ).all()
        )
        sketches = s.scalars(
            select(OnlineAggregate.sketch).where(OnlineAggregate.metric == "latency_ms")
        ).all()
    assert applied == N
    assert pending_count(db) == 0
    # The aggregates saw every prediction exactly once too, latency histograms included.
    assert totals["predictions"] == N
    assert totals["latency_ms"] == N
    assert totals["confidence"] == N
    assert sum(sketch.decode(data).count for data in sketches) == N


def test_broker_outage_while_producing(postgres, own_broker: KafkaBroker) -> None:  # noqa: ANN001
    db = Database(postgres.create_database())
    schema.upgrade(db)
    bus = KafkaBus([own_broker.bootstrap], delivery_timeout_s=3)
    prefix = "outage"
    bus.ensure_topics(events.topics(prefix))
    stop = threading.Event()
    relay = threading.Thread(target=OutboxRelay(db, bus, batch_size=200).run, args=(stop,))
    worker = make_worker(db, bus, prefix)
    consumer = threading.Thread(target=worker.run, args=(stop,))
    writer = threading.Thread(
        target=write_outbox, args=(db, N, prefix), kwargs={"batch": 50, "pause_s": 0.04}
    )
    relay.start()
    consumer.start()
    writer.start()
    try:
        wait_until(lambda: count_predictions(db)[0] >= 800, 120, "the first events to arrive")
        own_broker.kill()
        accepted_during_outage = N - pending_count(db)
        wait_until(lambda: pending_count(db) >= 300, 60, "events to queue during the outage")
        own_broker.start()
        writer.join()
        wait_until(lambda: count_predictions(db)[0] >= N, 240, f"all {N} events to arrive")
        wait_until(lambda: pending_count(db) == 0, 60, "the outbox to drain")
    finally:
        stop.set()
        writer.join()
        relay.join()
        consumer.join()
    assert accepted_during_outage > 0
    assert_exactly_once(db)
    db.dispose()


def _worker_process(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app", "worker", "--no-relay"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.parametrize("transport", ["kafka", "embedded"])
def test_consumer_killed_mid_stream(
    transport: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if transport == "kafka":
        url = request.getfixturevalue("postgres").create_database()
        broker = request.getfixturevalue("kafka")
        bus_url = broker.url
        db = Database(url)
        bus = KafkaBus([broker.bootstrap])
    else:
        url = f"sqlite:///{tmp_path / 'abvoc.db'}"
        bus_url = "embedded://"
        db = Database(url)
        bus = EmbeddedBus(db)
    schema.upgrade(db)
    prefix = f"kill{tmp_path.name[-8:]}"
    bus.ensure_topics(events.topics(prefix))
    env = {
        "ABVOC_DATABASE_URL": url,
        "ABVOC_BUS_URL": bus_url,
        "ABVOC_TOPIC_PREFIX": prefix,
        "ABVOC_DATA_DIR": str(tmp_path),
    }
    log = tmp_path / "worker.log"

    stop = threading.Event()
    relay = threading.Thread(target=OutboxRelay(db, bus, batch_size=200).run, args=(stop,))
    writer = threading.Thread(
        target=write_outbox, args=(db, N, prefix), kwargs={"batch": 50, "pause_s": 0.03}
    )
    relay.start()
    writer.start()
    proc = _worker_process(env, log)
    try:
        wait_until(lambda: count_predictions(db)[0] >= 1000, 120, "the worker to apply 1000")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        killed_at = count_predictions(db)[0]
        proc = _worker_process(env, log)
        writer.join()
        wait_until(lambda: count_predictions(db)[0] >= N, 240, f"all {N} events to arrive")
    finally:
        stop.set()
        writer.join()
        relay.join()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
    assert killed_at < N, "the kill must land mid-stream"
    assert_exactly_once(db)
    db.dispose()
