"""While the store is restarting or unreachable the API answers 503 with a hint to retry (not a
500), and serves again by itself once the store is back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app import close_app, create_app
from app.auth import create_key
from core.settings import load_settings
from core.store import schema
from core.store.db import Database
from tests.support.postgres import PostgresServer


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own, since the test stops it."""
    server = PostgresServer().start()
    yield server
    server.stop()


def test_store_down_is_503_then_recovers(own_postgres: PostgresServer, tmp_path: Path) -> None:
    url = own_postgres.create_database()
    with Database(url) as db:
        schema.upgrade(db)
        key = create_key(db, ["admin"], name="outage")["key"]
    settings = load_settings(env={"ABVOC_DATA_DIR": str(tmp_path), "ABVOC_DATABASE_URL": url,
                                  "ABVOC_SECRET_KEY": "outage-secret"})
    app = create_app(settings, test_config={"TESTING": True})
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    try:
        assert client.get("/v1/experiments", headers=headers).status_code == 200
        own_postgres.halt()
        down = client.get("/v1/experiments", headers=headers)
        assert down.status_code == 503, down.get_data(as_text=True)
        assert "store is unavailable" in down.get_json()["error"]
        assert down.headers["Retry-After"] == "2"
        # The model registry too: a registry read that fails is the store's state (it was a
        # 500 carrying the driver's message, seen in the fault campaign).
        registry = client.get("/v1/candidates", headers=headers)
        assert registry.status_code == 503, registry.get_data(as_text=True)
        assert "psycopg" not in registry.get_data(as_text=True)
        own_postgres.start()
        assert client.get("/v1/experiments", headers=headers).status_code == 200
    finally:
        close_app(app)
