"""With the store down, the open probes (/readyz, /v2/health/ready) say it is unreachable
without the user, host and port its error names (anyone may call them), and the log says why
once a while, not once a request: a PostgreSQL restart wrote hundreds of identical, causeless
lines (both found by a PostgreSQL + Kafka deployment pass). The routing notices' LISTEN
connection says an outage once and its end once, not at each retry."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import close_app, create_app
from core.settings import load_settings
from serving.route_changes import NoticeWatch
from tests.support.keys import bearer
from tests.support.postgres import PostgresServer


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


def test_open_probes_hide_the_store_s_address_and_the_log_says_why_once(
        own_postgres: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = own_postgres.create_database(migrated=True)
    app = create_app(load_settings(env={"ABVOC_DATA_DIR": str(tmp_path / "data"),
                                        "ABVOC_DATABASE_URL": url,
                                        "ABVOC_SECRET_KEY": "test-secret"}),
                     test_config={"TESTING": True})
    try:
        client, admin = app.test_client(), bearer(app, "admin")
        own_postgres.halt()
        address = (str(own_postgres.port), "127.0.0.1", "postgres@")
        with caplog.at_level(logging.WARNING):
            for _ in range(5):
                ready = client.get("/readyz")
                assert ready.status_code == 503
                said = ready.get_json()["checks"]["database"]
                assert said == "unreachable (the service's log says why)", said
                v2 = client.get("/v2/health/ready")
                assert v2.status_code == 503 and "unreachable" in v2.get_json()["error"]
                for text in (ready.get_data(as_text=True), v2.get_data(as_text=True)):
                    assert not any(a in text for a in address), text
                assert client.get("/v1/candidates", headers=admin).status_code == 503
        lines = [r.getMessage() for r in caplog.records]
        probe = [m for m in lines if "ABVOC_DATABASE_URL" in m and "unreachable" in m]
        store = [m for m in lines if m.startswith("store unavailable: OperationalError: ")]
        assert len(probe) == 1 and str(own_postgres.port) in probe[0], lines
        assert len(store) == 1 and "connection" in store[0].lower(), lines
    finally:
        own_postgres.start()
        close_app(app)


def test_routing_notices_say_an_outage_once_and_its_end_once(
        own_postgres: PostgresServer, caplog: pytest.LogCaptureFixture) -> None:
    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.name == "serving.route_changes" and r.levelno >= logging.WARNING]

    own_postgres.halt()  # an API process that starts while its store is down
    with caplog.at_level(logging.DEBUG, logger="serving.route_changes"):
        watch = NoticeWatch(own_postgres.url())
        try:
            time.sleep(2.6)  # tries at once, after 0.5 s, after 1 s more
            own_postgres.start()
            deadline = time.monotonic() + 20
            while not any("listening on the store again" in m for m in said()):
                assert time.monotonic() < deadline, said()
                time.sleep(0.1)
            assert watch.changed()  # what was sent meanwhile is lost: the router reloads
        finally:
            watch.close()
    retries = [r for r in caplog.records if r.levelno == logging.DEBUG
               and "cannot listen" in r.getMessage()]
    assert len(retries) >= 2, caplog.records
    warned = said()
    assert len(warned) == 2, warned
    assert "cannot listen" in warned[0] and "listening on the store again" in warned[1], warned
