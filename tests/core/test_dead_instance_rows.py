"""A killed instance's heartbeat row does not outlive the instance that replaced it. A worker
killed with `kill -9` and restarted a second later left its row behind (the new one forgets at
its start only rows already stale), so once the new one stopped cleanly /readyz read the part as
dead ('not beating') instead of stopped; found by a soak of the service on PostgreSQL + Kafka."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import select, update

from core.health import Heartbeat, component_checks
from core.store.db import Database, utcnow
from core.store.models import ComponentHeartbeat
from core.supervision import Supervisor


def instances(db: Database) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(ComponentHeartbeat.instance)
                             .where(ComponentHeartbeat.component == "worker")))


def test_a_killed_instance_is_forgotten_while_its_successor_runs(db: Database) -> None:
    killed = Heartbeat(db, "worker")
    killed.beat()  # its last beat: a second before the new instance starts
    stop = threading.Event()
    supervisor = Supervisor("worker", db, beat_interval_s=0.01, clear_stale_every_s=0.2)

    def step() -> float:
        time.sleep(0.01)
        return 0.0

    running = threading.Thread(target=supervisor.run, args=(stop, step, lambda: None),
                               daemon=True)
    running.start()
    try:
        deadline = time.monotonic() + 10
        while len(instances(db)) < 2:  # the new one beats beside the killed one's fresh row
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert killed.instance in instances(db)
        with db.session() as s:  # time passes: the killed one's row goes stale
            s.execute(update(ComponentHeartbeat)
                      .where(ComponentHeartbeat.instance == killed.instance)
                      .values(beat_at=utcnow() - timedelta(seconds=60)))
        while killed.instance in instances(db):
            assert time.monotonic() < deadline, "the dead instance's row stayed"
            time.sleep(0.02)
        assert component_checks(db)["worker"] == "ok"
    finally:
        stop.set()
        running.join(10)
    assert not running.is_alive()
    # The successor stopped cleanly: the part is stopped, not dead.
    assert instances(db) == set()
    assert "worker" not in component_checks(db)
    assert component_checks(db, expected=["worker"])["worker"].startswith("down: stopped")


def test_a_live_peer_is_never_forgotten(db: Database) -> None:
    """Only rows past the stale limit go: a peer beating in another process stays."""
    peer = Heartbeat(db, "worker")
    peer.beat()
    stop = threading.Event()
    supervisor = Supervisor("worker", db, beat_interval_s=0.01, clear_stale_every_s=0.05)
    rounds: list[int] = []

    def step() -> float:
        rounds.append(1)
        if len(rounds) % 10 == 0:
            peer.beat()
        if len(rounds) >= 60:
            stop.set()
        time.sleep(0.01)
        return 0.0

    supervisor.run(stop, step, lambda: None)
    assert instances(db) == {peer.instance}
