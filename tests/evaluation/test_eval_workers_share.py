"""Several workers share the load: two members of the consumer group split the partitions, and
together they count every event exactly once."""

from __future__ import annotations

import threading

import pytest

from core import events
from core.bus.embedded import EmbeddedBus
from core.bus.kafka import KafkaBus
from core.outbox import OutboxRelay
from core.store import schema
from core.store.db import Database
from evaluation.worker import make_worker
from tests.core.test_faults import PREDICTIONS, WRITE, N, assert_exactly_once
from tests.support.flow import SECRET, joined, wait_until, write_outbox


@pytest.mark.parametrize("transport", ["kafka", "embedded"])
def test_two_workers_share_the_stream(transport: str, request: pytest.FixtureRequest,
                                      tmp_path) -> None:  # noqa: ANN001
    if transport == "kafka":
        db = Database(request.getfixturevalue("postgres").create_database(migrated=True))
        bus = KafkaBus([request.getfixturevalue("kafka").bootstrap])
    else:
        db = Database(f"sqlite:///{tmp_path / 'abvoc.db'}")
        bus = EmbeddedBus(db, heartbeat_s=0.2)
    schema.upgrade(db)
    prefix = f"share{tmp_path.name[-8:]}"
    bus.ensure_topics(events.topics(prefix))
    write_outbox(db, PREDICTIONS, prefix, **WRITE)  # predictions and their corrections
    stop = threading.Event()
    workers = [make_worker(db, bus, prefix, secret=SECRET, max_records=200) for _ in range(2)]
    threads = [threading.Thread(target=w.run, args=(stop,), name=f"worker-{i}", daemon=True)
               for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    relay = threading.Thread(target=OutboxRelay(db, bus, batch_size=250).run, args=(stop,),
                             name="relay", daemon=True)
    threads.append(relay)
    try:
        # Publish only once the group has shared its partitions between the two members.
        wait_until(lambda: all(w.assignment() for w in workers)
                   and not set.intersection(*(w.assignment() for w in workers)),
                   90, "both workers to hold partitions")
        relay.start()
        wait_until(lambda: sum(w.applied for w in workers) >= N, 180, f"all {N} events")
    finally:
        stop.set()
        joined(threads)
    assert all(w.applied > 0 for w in workers), [w.applied for w in workers]
    assert sum(w.applied for w in workers) == N
    assert_exactly_once(db)
    db.dispose()
