"""Shared fixtures: a fresh database per test on SQLite and on PostgreSQL, and real services.

PostgreSQL and Kafka are started once per session on free loopback ports. They are required:
a missing server is an error, never a skip (scripts/install-system.sh installs both).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.settings import Settings, load_settings
from core.store import schema
from core.store.db import Database
from tests.support.kafka import KafkaBroker
from tests.support.postgres import PostgresServer

# Fixtures kept beside the helpers they serve.
pytest_plugins = ["tests.support.stub_server", "tests.support.pages"]


@pytest.fixture(autouse=True)
def _own_prometheus_folder() -> Iterator[None]:
    """A command run in-process (`abvoc up`, `serve`, `demo`) points this process's Prometheus
    samples at its data folder; put it back, so a later test's /metrics reads its own app's."""
    before = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    yield
    if before is None:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = before


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaBroker]:
    broker = KafkaBroker().start()
    yield broker
    broker.discard()


@pytest.fixture
def own_broker() -> Iterator[KafkaBroker]:
    """A broker of the test's own, for a test that kills it."""
    broker = KafkaBroker().start()
    yield broker
    broker.discard()


@pytest.fixture(scope="session")
def sqlite_head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store migrated to the schema's head once per session, for tests to copy."""
    path = tmp_path_factory.mktemp("head") / "abvoc.db"
    database = Database(f"sqlite:///{path}")
    schema.upgrade(database)
    database.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new database at the schema's head, a SQLite file or a database on the session's
    PostgreSQL: a copy of one migrated once per session (migrating each takes far longer)."""
    if request.param == "sqlite":
        path = tmp_path / "abvoc.db"
        with closing(sqlite3.connect(request.getfixturevalue("sqlite_head"))) as head, \
                closing(sqlite3.connect(path)) as copy:
            head.backup(copy)
        yield f"sqlite:///{path}"
        return
    yield from _postgres_database(request.getfixturevalue("postgres"), migrated=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new database with no tables, for tests of the migrations themselves."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    yield from _postgres_database(request.getfixturevalue("postgres"), migrated=False)


def _postgres_database(server: PostgresServer, *, migrated: bool) -> Iterator[str]:
    url = server.create_database(migrated=migrated)
    yield url
    server.drop_database(url)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A migrated store, fresh for each test."""
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return load_settings(
        env={
            "ABVOC_DATA_DIR": str(tmp_path / "data"),
            "ABVOC_DATABASE_URL": database_url,
            "ABVOC_SECRET_KEY": "test-secret",
            "ABVOC_TOPIC_PREFIX": f"t{tmp_path.name[-12:].replace('-', '')}",
        }
    )


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three reference candidates, trained small (seconds each) once per test session."""
    import torch

    from workloads.ocr.candidates import train_candidate

    torch.set_num_threads(1)
    models = tmp_path_factory.mktemp("models")
    for name in ("ocr-small-printed", "ocr-small-mixed", "ocr-large-mixed"):
        train_candidate(name, models, n_train=300, epochs=3, seed=0)
    return models


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The command line on a migrated store of this test's settings."""
    with Database(settings.database_url) as database:
        schema.upgrade(database)
    monkeypatch.setenv("ABVOC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(settings.data_dir))
    return CliRunner()
