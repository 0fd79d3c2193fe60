"""A store lost while a process migrates it at start is the same one line, naming the variable,
as a store unreachable before: it was a psycopg AdminShutdown traceback (`abvoc worker` started
as PostgreSQL went down)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from app.cli import main
from core.errors import ConfigError
from core.settings import load_settings
from core.startup import connect
from core.store import schema
from core.store.db import Database
from tests.support.postgres import PostgresServer


def _waiting_backend(admin: psycopg.Connection, database: str, timeout_s: float = 30) -> int:
    """The pid of the backend of `database` that waits for a lock (the migration)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND "
                            "wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
                            (database,)).fetchone()
        if row is not None:
            return int(row[0])
        time.sleep(0.05)
    raise AssertionError("no migration waited for the test's lock")


@pytest.mark.parametrize("how", ["connect", "cli"])
def test_a_store_lost_during_the_start_up_migration_is_one_line(
        postgres: PostgresServer, tmp_path: Path, how: str) -> None:
    url = postgres.create_database(migrated=False)
    db = Database(url)
    try:
        schema.upgrade(db, "0035")  # 0036 alters relabel_items, which the test holds
        db.dispose()
        env = {"ABVOC_DATA_DIR": str(tmp_path / "data"), "ABVOC_DATABASE_URL": url,
               "ABVOC_SECRET_KEY": "test-secret", "ABVOC_BUS_URL": "embedded://"}
        raw = url.replace("postgresql+psycopg://", "postgresql://")
        database = raw.rsplit("/", 1)[1]
        with psycopg.connect(raw, autocommit=True) as admin, \
                psycopg.connect(raw) as holder:
            holder.execute("LOCK TABLE relabel_items IN ACCESS SHARE MODE")
            killer = threading.Thread(target=lambda: admin.execute(
                "SELECT pg_terminate_backend(%s)", (_waiting_backend(admin, database),)))
            killer.start()
            if how == "cli":  # the command of the report: its start-up migrates the store
                result = CliRunner().invoke(main, ["worker"], env=env)
            else:
                with pytest.raises(ConfigError) as caught:
                    connect(load_settings(env=env)).close()
            killer.join(60)
            holder.rollback()
        if how == "cli":
            assert result.exit_code == 2, result.output
            assert "ABVOC_DATABASE_URL=" in result.output and "is unreachable" in result.output
            assert "Traceback" not in result.output
        else:
            assert caught.value.message.startswith("ABVOC_DATABASE_URL=")
            assert "is unreachable" in caught.value.message
    finally:
        db.dispose()
        postgres.drop_database(url)


def test_an_unreachable_postgresql_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """psycopg's refusal has a second, tab-indented line ("Is the server running on that
    host ..."): the error printed it as is, two lines where one is promised."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ABVOC_DATABASE_URL", f"postgresql://u:secret@127.0.0.1:{port}/db")
    result = CliRunner().invoke(main, ["keys", "list"])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "\t" not in result.output, result.output
    assert result.output.startswith("abvoc: error: ABVOC_DATABASE_URL=") and \
        "is unreachable: connection failed" in result.output and "secret" not in result.output
