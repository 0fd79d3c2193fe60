"""Fault tests against the real broker: an outage mid-stream and a consumer killed with SIGKILL.

5,000 events each, predictions and their corrections. Both must end with the set of applied
event ids equal to the set of accepted ones, and every prediction and truth counted once.
"""

from __future__ import annotations

import os
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
from core.store.models import (
    Correction,
    OnlineAggregate,
    OutboxEvent,
    Prediction,
    PredictionTruth,
    ProcessedEvent,
)
from evaluation import sketch
from evaluation.worker import GROUP_ID, make_worker
from tests.support.flow import (
    SECRET,
    corrected,
    joined,
    outbox_batches,
    wait_until,
    write_batches,
)
from tests.support.kafka import KafkaBroker

PREDICTIONS = 4012
CORRECT_EVERY = 4
CORRECTED = corrected(PREDICTIONS, CORRECT_EVERY)
N = PREDICTIONS + len(CORRECTED)  # 5,000 events: 4,012 predictions and 988 corrections
WRITE = {"batch": 50, "correct_every": CORRECT_EVERY}
pytestmark = pytest.mark.slow


def applied(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(ProcessedEvent)
                        .where(ProcessedEvent.group_id == GROUP_ID)) or 0


def held_back(
    batches: list[list[dict]], first: int, gate: threading.Event
) -> Iterator[list[dict]]:
    """The first `first` batches, then the rest once `gate` is set."""
    yield from batches[:first]
    gate.wait(120)
    yield from batches[first:]


def assert_exactly_once(db: Database) -> None:
    """The applied ids are the accepted ones, as sets, and every sum counted each once."""
    with db.session() as s:
        outbox = set(s.scalars(select(OutboxEvent.event_id)))
        processed = set(s.scalars(select(ProcessedEvent.event_id)
                                  .where(ProcessedEvent.group_id == GROUP_ID)))
        predictions = dict(s.execute(select(Prediction.prediction_id, Prediction.event_id)).all())
        corrections = dict(s.execute(select(Correction.correction_id, Correction.event_id)).all())
        truths = set(s.scalars(select(PredictionTruth.prediction_id)))
        totals = dict(s.execute(select(OnlineAggregate.metric, func.sum(OnlineAggregate.n))
                                .group_by(OnlineAggregate.metric)).all())
        sketches = s.scalars(
            select(OnlineAggregate.sketch).where(OnlineAggregate.metric == "latency_ms")
        ).all()
    assert len(outbox) == N
    assert pending_count(db) == 0
    assert processed - outbox == set(), "applied events that were never accepted"
    assert outbox - processed == set(), "accepted events that were never applied"
    assert set(predictions.values()) | set(corrections.values()) == outbox
    assert set(predictions) == {f"r-{i}" for i in range(PREDICTIONS)}
    assert set(corrections) == {f"r-c{j}" for j in CORRECTED}
    assert truths == {f"r-{j}" for j in CORRECTED}
    # The aggregates saw every prediction and every joined truth exactly once, latency
    # histograms included.
    assert totals["predictions"] == PREDICTIONS
    assert totals["latency_ms"] == PREDICTIONS
    assert totals["confidence"] == PREDICTIONS
    assert sum(sketch.decode(data).count for data in sketches) == PREDICTIONS
    assert totals["corrected"] == len(CORRECTED)
    assert totals["exact_match"] == len(CORRECTED)


def test_broker_outage_while_producing(postgres, own_broker: KafkaBroker) -> None:  # noqa: ANN001
    db = Database(postgres.create_database())
    schema.upgrade(db)
    bus = KafkaBus([own_broker.bootstrap], delivery_timeout_s=3)
    prefix = "outage"
    bus.ensure_topics(events.topics(prefix))
    stop = threading.Event()
    relay = threading.Thread(target=OutboxRelay(db, bus, batch_size=200).run, args=(stop,),
                             name="relay", daemon=True)
    worker = make_worker(db, bus, prefix, secret=SECRET)
    consumer = threading.Thread(target=worker.run, args=(stop,), name="worker", daemon=True)
    # The writer holds back its last two thirds until the broker is down, so the outage always
    # lands mid-stream however fast the first third travels.
    broker_down = threading.Event()
    batches = list(outbox_batches(PREDICTIONS, "r", **WRITE))
    writer = threading.Thread(
        target=write_batches, args=(db, held_back(batches, len(batches) // 3, broker_down), prefix),
        kwargs={"pause_s": 0.04}, name="writer", daemon=True,
    )
    relay.start()
    consumer.start()
    writer.start()
    try:
        wait_until(lambda: applied(db) >= 800, 120, "the first events to arrive")
        own_broker.kill()
        broker_down.set()
        # The writer goes on accepting: those events wait in the outbox for the broker.
        wait_until(lambda: pending_count(db) >= 300, 60, "events to queue during the outage")
        own_broker.start()
        joined([writer], 240)
        wait_until(lambda: applied(db) >= N, 240, f"all {N} events to arrive")
        wait_until(lambda: pending_count(db) == 0, 60, "the outbox to drain")
    finally:
        stop.set()
        broker_down.set()
        joined([writer, relay, consumer])
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
        "ABVOC_SECRET_KEY": SECRET,
    }
    log = tmp_path / "worker.log"

    stop = threading.Event()
    relay = threading.Thread(target=OutboxRelay(db, bus, batch_size=200).run, args=(stop,),
                             name="relay", daemon=True)
    # The writer holds back its last half until the worker is killed, so the kill lands
    # mid-stream even when the worker starts after the first half is all written.
    killed = threading.Event()
    batches = list(outbox_batches(PREDICTIONS, "r", **WRITE))
    writer = threading.Thread(
        target=write_batches, args=(db, held_back(batches, len(batches) // 2, killed), prefix),
        kwargs={"pause_s": 0.03}, name="writer", daemon=True,
    )
    relay.start()
    writer.start()
    proc = _worker_process(env, log)
    try:
        wait_until(lambda: applied(db) >= 1000, 120, "the worker to apply 1000")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        killed_at = applied(db)
        killed.set()
        proc = _worker_process(env, log)
        joined([writer], 240)
        wait_until(lambda: applied(db) >= N, 240, f"all {N} events to arrive")
    finally:
        stop.set()
        killed.set()
        joined([writer, relay])
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
    assert killed_at < N, "the kill must land mid-stream"
    assert_exactly_once(db)
    db.dispose()
