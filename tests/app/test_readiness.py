"""/readyz sees the parts that keep heartbeats in the store, whichever process runs them.

The rule (core.health): no heartbeat rows for a part, no judgement (API-only is ready) unless
the deployment says it runs the part (ABVOC_EXPECT_PARTS, as `abvoc up` sets it); rows but
none fresh, down; a live instance restarting, failing; lag past the limit, lagging. The outbox
is lagging when its oldest unsent event is older than the limit.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text, update

from app import close_app, create_app
from core.health import Heartbeat
from core.outbox import OutboxRelay, pending_count
from core.settings import Settings
from core.store.db import Database, utcnow
from core.store.models import ComponentHeartbeat, OutboxEvent
from core.supervision import Supervisor
from tests.support.flow import wait_until, write_outbox

SLACK_S = 5


def said(actual: str, expected: str, *, opening: bool = False) -> bool:
    """`actual` is `expected` (or, `opening`, begins with it), each age in it ("for 30s", "70s
    ago") or up to SLACK_S more: the clock goes on between the store's write and the read (a
    loaded CI once took 2 s over a /readyz)."""
    ages = re.escape(expected)
    ages = re.sub(r"(?<=for\\ )(\d+)s|(\d+)s(?=\\ ago)",
                  lambda m: "(?:{})s".format("|".join(
                      str(int(m[1] or m[2]) + d) for d in range(SLACK_S + 1))), ages)
    return (re.match if opening else re.fullmatch)(ages, actual) is not None


@pytest.fixture
def ready_app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings, test_config={"TESTING": True, "READY_STALE_S": 5,
                                            "READY_MAX_LAG_S": 60})
    yield app
    close_app(app)


def ready(client: FlaskClient) -> tuple[int, dict[str, str]]:
    """The status and the checks; the request spool's is checked here (on SQLite only)."""
    response = client.get("/readyz")
    checks = response.get_json()["checks"]
    return response.status_code, spool_checked(client, checks)


def spool_checked(client: FlaskClient, checks: dict[str, str]) -> dict[str, str]:
    """The checks less the request spool's, which is there exactly on SQLite, and ok."""
    url = client.application.extensions["abvoc"].settings.database_url
    rest = dict(checks)
    assert rest.pop("spool", None) == ("ok" if url.startswith("sqlite") else None)
    return rest


def age_rows(db: Database, seconds: float) -> None:
    with db.session() as s:
        s.execute(update(ComponentHeartbeat)
                  .values(beat_at=utcnow() - timedelta(seconds=seconds)))


def test_parts_down_failing_or_lagging_make_the_service_not_ready(ready_app: Flask) -> None:
    db = ready_app.extensions["abvoc"].db
    client = ready_app.test_client()
    assert ready(client) == (200, {"database": "ok", "bus": "ok", "outbox": "ok"})
    worker = Heartbeat(db, "worker")
    worker.beat(lag_s=0.5)
    assert ready(client)[1]["worker"] == "ok"
    worker.beat(lag_s=300.0)
    status, checks = ready(client)
    assert status == 503 and checks["worker"].startswith("lagging: 300s behind")
    worker.beat(failing=True, restarts=2, error="OperationalError: server closed the connection")
    status, checks = ready(client)
    assert status == 503 and "server closed the connection" in checks["worker"]
    age_rows(db, 60)  # the process died (kill -9) or is stuck: its row stops moving
    status, checks = ready(client)
    assert status == 503, checks
    assert said(checks["worker"], "not beating: no heartbeat for 60s", opening=True), checks
    replacement = Heartbeat(db, "worker")
    replacement.clear_stale()
    replacement.beat()
    assert ready(client)[0] == 200
    replacement.forget()  # a clean stop: the part is no longer judged
    assert ready(client) == (200, {"database": "ok", "bus": "ok", "outbox": "ok"})
    again = Heartbeat(db, "worker")  # started again: its beats are judged, the stop forgotten
    again.clear_stale()
    again.beat(lag_s=300.0)
    assert ready(client)[1]["worker"].startswith("lagging: 300s behind")


@contextmanager
def expecting(settings: Settings, *parts: str) -> Iterator[tuple[Database, FlaskClient]]:
    """The app of a deployment that says it runs `parts` (ABVOC_EXPECT_PARTS): its store and
    a client."""
    app = create_app(settings.with_overrides(expect_parts=parts),
                     test_config={"TESTING": True, "READY_STALE_S": 5})
    try:
        yield app.extensions["abvoc"].db, app.test_client()
    finally:
        close_app(app)


def test_a_part_the_deployment_runs_is_down_until_its_first_heartbeat(
        settings: Settings) -> None:
    """Without the setting a relay and worker that never beat (crashing at start, or their
    heartbeats not written) looked like parts this deployment does not run: ready."""
    with expecting(settings, "relay", "worker") as (db, client):
        status, checks = ready(client)
        assert status == 503
        for part in ("relay", "worker"):
            assert checks[part].startswith("down: no instance has written a heartbeat yet")
        Heartbeat(db, "relay").beat()
        status, checks = ready(client)
        assert status == 503 and checks["relay"] == "ok" and checks["worker"].startswith("down")
        worker = Heartbeat(db, "worker")
        worker.beat()
        assert ready(client) == (200, {"database": "ok", "bus": "ok", "outbox": "ok",
                                       "relay": "ok", "worker": "ok"})
        worker.forget()  # stopped on purpose: still a part this deployment runs
        worker_said = ready(client)[1]["worker"]
        assert said(worker_said, "down: stopped: no instance runs (the last stopped cleanly "
                    "0s ago", opening=True), worker_said


def older_node_checks(db: Database, stale_s: float = 15) -> dict[str, str]:
    """What an abvoc released before 0026 (b0751b0's core.health) says of the heartbeat rows:
    it knows no stop, and a part whose rows all beat longer ago than the limit is down."""
    now = utcnow()
    with db.reading() as s:
        rows = s.execute(select(ComponentHeartbeat.component, ComponentHeartbeat.beat_at)).all()
    newest: dict[str, float] = {}
    for component, beat_at in rows:
        age = (now - (beat_at if beat_at.tzinfo else beat_at.replace(tzinfo=now.tzinfo)))
        newest[component] = min(newest.get(component, 1e9), age.total_seconds())
    return {c: "ok" if age <= stale_s else "down" for c, age in newest.items()}


def test_a_clean_stop_leaves_no_row_an_older_node_takes_for_a_dead_part(
        settings: Settings) -> None:
    """A clean stop kept the instance's heartbeat row, marked stopped: an older abvoc on the
    same store (a rolling upgrade) knows no mark, read the row's stale beat as a dead worker
    and answered 503. The row goes again; the stop is kept apart, so /readyz here still says
    "stopped" of a part the deployment runs."""
    with expecting(settings, "relay", "worker") as (db, client):
        relay, worker = Heartbeat(db, "relay"), Heartbeat(db, "worker")
        relay.beat()
        worker.beat()
        worker.forget()
        age_rows(db, 600)  # ten minutes on: the relay beats on, the worker stays stopped
        relay.beat()
        assert older_node_checks(db) == {"relay": "ok"}  # the old rule finds nothing dead
        status, checks = ready(client)
        assert status == 503 and checks["relay"] == "ok", checks
        assert checks["worker"].startswith("down: stopped: no instance runs (the last stopped "
                                           "cleanly"), checks


def test_a_stopped_part_is_told_from_one_that_never_started(settings: Settings) -> None:
    """A clean stop deleted the instance's row, so /readyz said of a worker that had run for
    minutes that it "has not written a heartbeat yet", and the operator looked for a start-up
    failure. The row still goes (older nodes read only rows), the stop is recorded apart; a
    new instance clears the stops."""
    with expecting(settings, "worker") as (db, client):
        first, second = Heartbeat(db, "worker"), Heartbeat(db, "worker")
        first.beat()
        second.beat()
        first.forget()  # one of two stops: the other still runs
        assert ready(client)[1]["worker"] == "ok"
        second.forget()  # stopped: not "not beating", not "never started"
        status, checks = ready(client)
        assert status == 503
        assert checks["worker"].startswith("down: stopped: no instance runs (the last stopped "
                                           "cleanly"), checks
        assert "ABVOC_EXPECT_PARTS" in checks["worker"]
        with db.reading() as s:
            assert s.scalar(select(func.count()).select_from(ComponentHeartbeat)) == 0
            assert s.scalar(text("SELECT count(*) FROM component_stops")) == 2
        fresh = Heartbeat(db, "worker")
        fresh.clear_stale()  # the stops are forgotten as a new instance starts
        assert ready(client)[1]["worker"].startswith("down: no instance has written")
        fresh.beat()
        assert ready(client) == (200, {"database": "ok", "bus": "ok", "outbox": "ok",
                                       "worker": "ok"})


def test_a_silent_part_is_not_beating_and_an_old_error_is_dated_not_blamed(
        ready_app: Flask) -> None:
    """A worker blocked in a store transaction was reported "down"; and a relay whose row could
    not be written while PostgreSQL restarted showed the error of a Kafka outage it had
    recovered from, as if it were the cause."""
    db = ready_app.extensions["abvoc"].db
    client = ready_app.test_client()
    relay = Heartbeat(db, "relay")
    relay.beat(failing=True, restarts=1, error="BusUnavailable: Kafka unavailable")
    with db.session() as s:
        s.execute(update(ComponentHeartbeat).values(
            last_error_at=utcnow() - timedelta(seconds=70)))
    checks = ready(client)[1]
    assert said(checks["relay"], "failing: 1 of 1 instances restarting; last error 70s ago: "
                "BusUnavailable: Kafka unavailable"), checks
    relay.beat(restarts=1)  # the bus came back: a round succeeded
    age_rows(db, 30)  # then the store went away: nothing more written
    checks = ready(client)[1]
    assert said(checks["relay"], "not beating: no heartbeat for 30s (limit 5s): its process may "
                "have died or be stuck, e.g. waiting on a lock"), checks
    relay.beat(failing=True, restarts=2, error="OperationalError: connection refused")
    age_rows(db, 30)  # failing at its last beat: that error is the latest news, with its age
    relay_said = ready(client)[1]["relay"]
    assert said(relay_said[relay_said.index("waiting on a lock"):], "waiting on a lock; last "
                "error 0s ago: OperationalError: connection refused"), relay_said


def test_a_part_reading_another_topic_prefix_is_not_ready(ready_app: Flask) -> None:
    """A worker started with a mistyped ABVOC_TOPIC_PREFIX consumed its own empty topics and
    beat as healthy while every event waited unread."""
    services = ready_app.extensions["abvoc"]
    db, client, ours = services.db, ready_app.test_client(), services.settings.topic_prefix
    typo = Heartbeat(db, "worker", topic_prefix="abvocx", consumer_group="evaluation")
    typo.beat()
    Heartbeat(db, "relay").beat()  # a part that names no prefix is not judged on it
    status, checks = ready(client)
    assert status == 503 and checks["relay"] == "ok"
    assert checks["worker"].startswith("wrong topics: its live instances read topics prefixed "
                                       f"'abvocx', while this API writes to {ours!r}"), checks
    right = Heartbeat(db, "worker", topic_prefix=ours, consumer_group="evaluation")
    right.beat()  # one member reads the API's topics: the events are applied
    assert ready(client)[0] == 200
    right.forget()
    assert ready(client)[1]["worker"].startswith("wrong topics")


def test_a_part_that_notes_trouble_is_not_ready(ready_app: Flask) -> None:
    """A worker with another secret key parks every correction and outcome; its loop runs,
    so only the note in its heartbeat (core.parking.ReceiptAlarm) can tell /readyz."""
    db, client = ready_app.extensions["abvoc"].db, ready_app.test_client()
    worker = Heartbeat(db, "worker")
    worker.note = "parks most of what it reads for lack of a valid receipt"
    worker.beat()
    status, checks = ready(client)
    assert status == 503 and checks["worker"] == (
        "parking: 1 of 1 instances: parks most of what it reads for lack of a valid receipt")
    worker.note = None
    worker.beat()
    assert ready(client)[0] == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_heartbeats_that_cannot_be_written_are_logged_as_warnings(
        db: Database, caplog: pytest.LogCaptureFixture) -> None:
    """They were logged at debug level only, so a part whose beats failed looked absent from
    /readyz with nothing in the log to say why."""
    heartbeat = Heartbeat(db, "worker")
    with db.session() as s:
        s.execute(text("ALTER TABLE component_heartbeats RENAME TO heartbeats_away"))
    with caplog.at_level(logging.WARNING, logger="core.health"):
        assert not heartbeat.beat() and not heartbeat.beat()
        failed = [r.getMessage() for r in caplog.records]
        assert len(failed) == 1, failed  # the first of a run of failures, not every beat
        assert "heartbeat of worker" in failed[0] and "not written (1 in a row)" in failed[0]
        assert "no such table: component_heartbeats" in failed[0]
        with db.session() as s:
            s.execute(text("ALTER TABLE heartbeats_away RENAME TO component_heartbeats"))
        assert heartbeat.beat()
    assert "written again after 2 failed writes" in caplog.records[-1].getMessage()
    assert heartbeat.failed_writes == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_supervised_loop_counts_the_heartbeats_it_could_not_write(db: Database) -> None:
    """For alerts: abvoc_heartbeat_write_failures_total{component}, in every process's
    /metrics."""
    def failures() -> float:
        return REGISTRY.get_sample_value("abvoc_heartbeat_write_failures_total",
                                         {"component": "beats-probe"}) or 0.0

    before = failures()
    with db.session() as s:
        s.execute(text("ALTER TABLE component_heartbeats RENAME TO heartbeats_away"))
    stop, rounds = threading.Event(), []

    def step() -> float:
        rounds.append(1)
        if len(rounds) == 3:
            stop.set()
        return 0.0

    Supervisor("beats-probe", db, beat_interval_s=0).run(stop, step, lambda: None)
    assert failures() - before == 4  # the first beat, then one per round
    with db.session() as s:
        s.execute(text("ALTER TABLE heartbeats_away RENAME TO component_heartbeats"))


def test_an_old_outbox_backlog_is_not_ready(ready_app: Flask) -> None:
    db = ready_app.extensions["abvoc"].db
    client = ready_app.test_client()
    write_outbox(db, 3, "t")
    assert ready(client)[0] == 200  # waiting briefly is normal
    with db.session() as s:
        s.execute(update(OutboxEvent).values(created_at=utcnow() - timedelta(seconds=90)))
    status, checks = ready(client)
    assert status == 503 and checks["outbox"].startswith("lagging: oldest unsent event is 90s")


def test_a_relay_that_hits_a_store_error_keeps_running_and_readyz_shows_it(
    ready_app: Flask,
) -> None:
    """Before, any error but 'bus unavailable' ended the relay thread for good while /readyz
    still said ready. Here the store loses the outbox table for a while."""
    services = ready_app.extensions["abvoc"]
    db = services.db
    client = ready_app.test_client()
    relay = OutboxRelay(db, services.bus, batch_size=50)
    relay.supervisor.min_backoff_s = 0.05
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), kwargs={"max_backoff_s": 0.2})
    thread.start()
    try:
        wait_until(lambda: ready(client)[1].get("relay") == "ok", 30, "the relay's heartbeat")
        with db.session() as s:
            s.execute(text("ALTER TABLE outbox RENAME TO outbox_away"))
        wait_until(lambda: ready(client)[1].get("relay", "").startswith("failing"), 30,
                   "readyz to report the failing relay")
        with db.session() as s:
            s.execute(text("ALTER TABLE outbox_away RENAME TO outbox"))
        write_outbox(db, 120, "t")
        wait_until(lambda: pending_count(db) == 0, 30, "the relay to recover and drain")
        wait_until(lambda: ready(client)[0] == 200, 30, "readyz to say ready again")
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive() and relay.supervisor.restarts >= 1
    assert "relay" not in ready(client)[1]


# SQLite only: PostgreSQL's typed columns cannot hold such a row.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_heartbeat_row_that_does_not_parse_is_reported_not_a_server_error(
        ready_app: Flask) -> None:
    """A row the store gives back that its column types refuse (a list where a timestamp
    belongs, as once found in a store `scripts/serve` ran on) makes the service not ready,
    saying so: /readyz is where such a store is reported, not where it answers 500."""
    db = ready_app.extensions["abvoc"].db
    client = ready_app.test_client()
    with db.session() as s:
        s.execute(text("INSERT INTO component_heartbeats (component, instance, started_at, "
                       "beat_at, failing, restarts) VALUES ('evaluation', 'm', '[\"t\"]', "
                       "'2026-12-04 14:33:56.997620', 0, 0)"))
    status, checks = ready(client)
    assert status == 503
    assert checks["components"].startswith("unreadable: a heartbeat row does not parse"), checks
    assert checks["database"] == "ok"


def test_a_store_that_hangs_is_not_ready_within_the_probe_s_time(ready_app: Flask,
                                                                  monkeypatch) -> None:  # noqa: ANN001
    """A PostgreSQL that stopped answering (a partition, a stopped server) held /readyz and
    /v2/health/ready for the whole outage, then both said ready."""
    import threading
    import time

    from app.api import health as health_api

    db = ready_app.extensions["abvoc"].db
    released, calls = threading.Event(), []
    real_check = db.check

    def hangs() -> None:
        calls.append(1)
        released.wait(30)
        real_check()

    monkeypatch.setattr(db, "check", hangs)
    client = ready_app.test_client()
    for _ in range(2):
        started = time.monotonic()
        status, checks = ready(client)
        assert status == 503 and checks["database"].startswith("unreachable")
        assert time.monotonic() - started < health_api.PROBE_STORE_TIMEOUT_S + 1.0
    v2 = client.get("/v2/health/ready")
    assert v2.status_code == 503 and "unreachable" in v2.get_json()["error"]
    assert len(calls) == 1  # one stuck check at a time: probes pile nothing up
    released.set()
    time.sleep(0.2)
    assert ready(client)[0] == 200 and client.get("/v2/health/ready").status_code == 200
