"""The fault campaign fires its faults one at a time, each once the service recovered from the
one before, and says plainly what a fault did not do. Before, the faults fired at shares of the
events while the broker stayed down a fixed 15 s: a worker was killed and PostgreSQL restarted
while the broker was still down, and the campaign reported all three as fired."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from argparse import Namespace
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from benchmarks import campaign_faults
from benchmarks.campaign_audit import install_claims_log
from benchmarks.campaign_faults import Faults
from core.outbox import add_events
from core.store.db import Database
from tests.support.flow import prediction_event
from tests.support.postgres import PostgresServer


def _sleeper() -> subprocess.Popen:
    """A process standing for a worker: the campaign kills it and starts another."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


@pytest.fixture
def campaign(postgres: PostgresServer) -> Iterator[SimpleNamespace]:
    url = postgres.create_database(migrated=True)
    db = Database(url)
    install_claims_log(db)
    state = SimpleNamespace(
        db=db, stop=threading.Event(), events=0, workers=[_sleeper(), _sleeper()],
        args=Namespace(faults=["broker", "worker", "postgres"], events=100,
                       broker_down_s=0.0, postgres_down_s=0.0))
    state.progress = lambda: state.events
    state.spawn_worker = lambda i: _sleeper()
    yield state
    for proc in state.workers:
        proc.kill()
        proc.wait()
    db.dispose()
    postgres.drop_database(url)


class Timeline(Faults):
    """The broker's and PostgreSQL's faults as moments on a timeline (the real ones need a
    broker and a server of their own); the worker's fault and the recovery checks are real."""

    def __init__(self, campaign: Any) -> None:
        super().__init__(campaign, lambda _: None)
        self.moments: list[tuple[str, float]] = []

    def _broker(self) -> tuple[bool, str]:
        self.moments.append(("broker", time.monotonic()))
        self.c.events = 80  # the load went on past the next faults' shares meanwhile
        return True, "down"

    def _postgres(self) -> tuple[bool, str]:
        self.moments.append(("postgres", time.monotonic()))
        return True, "restarted"

    def _worker(self) -> tuple[bool, str]:
        self.moments.append(("worker", time.monotonic()))
        return super()._worker()

    def _recovered(self) -> float | None:
        took = super()._recovered()
        self.moments.append(("recovered", time.monotonic()))
        return took


def test_faults_fire_one_at_a_time_and_say_what_they_did(
        campaign: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(campaign_faults, "REDELIVERY_WAIT_S", 0.5)
    campaign.events = 20
    faults = Timeline(campaign)
    faults.run()
    names = [name for name, _ in faults.moments]
    # The worker's fault recovers once inside it (its check) and once after, as the others do.
    assert names == ["broker", "recovered", "worker", "recovered", "postgres", "recovered"]
    assert faults.fired == ["broker", "worker", "postgres"] and faults.not_fired == []
    worker = faults.reports[1]
    assert worker.at_events == 80 and not worker.checked
    assert "held no unapplied batch" in worker.line() and "NOT as claimed" in worker.line()
    assert all(p.poll() is None for p in campaign.workers)  # killed and started again


def test_a_fault_the_service_never_recovers_from_ends_the_plan(
        campaign: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(campaign_faults, "RECOVERY_TIMEOUT_S", 1.0)
    monkeypatch.setattr(campaign_faults, "BACKLOG", 1)
    with campaign.db.session() as s:  # events the relay never sends: the outbox stays behind
        add_events(s, [prediction_event(i) for i in range(3)], "campaign")
    campaign.events = 20
    faults = Timeline(campaign)
    faults.run()
    assert faults.fired == ["broker"] and faults.not_fired == ["worker", "postgres"]
    assert "not recovered" in faults.reports[0].line()
