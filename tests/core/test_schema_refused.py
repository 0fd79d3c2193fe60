"""A migration the database refuses is one line naming the fix, exit 2, with nothing stored:
`abvoc db upgrade` (and every process, which migrates as it starts) printed a 120-line driver
traceback and exited 1 on a database holding a table of abvoc's name (another application's,
or a store whose `alembic_version` was lost) or for a PostgreSQL user that may not create
tables (PostgreSQL 15's default on the `public` schema for any user but the owner)."""

from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from app.cli import main
from core.store import schema
from core.store.db import Database


def _one_line_refusal(url: str, *words: str) -> None:
    result = CliRunner().invoke(main, ["db", "upgrade"], env={"ABVOC_DATABASE_URL": url})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1, result.output
    for word in words:
        assert word in result.output, result.output


def test_a_database_holding_a_table_of_abvocs_name_is_refused_before_migrating(
        empty_database_url: str) -> None:
    with Database(empty_database_url) as db, db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE predictions (x INTEGER)"))
    _one_line_refusal(empty_database_url, "('predictions')", "no abvoc schema",
                      "point ABVOC_DATABASE_URL at abvoc's store or at an empty database")
    with Database(empty_database_url) as db:
        assert schema.current(db) is None
        with db.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == {"predictions"}


@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)  # SQLite: no users
def test_a_user_that_may_not_create_tables_is_told_so(empty_database_url: str) -> None:
    role = f"weak_{uuid.uuid4().hex[:8]}"
    with Database(empty_database_url) as db:
        with db.engine.begin() as conn:
            conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        try:
            weak = make_url(empty_database_url).set(username=role, password=None)
            _one_line_refusal(weak.render_as_string(hide_password=False),
                              "permission denied for schema public", "nothing was changed",
                              "a user that may create and alter tables")
            assert schema.current(db) is None
        finally:
            with db.engine.begin() as conn:
                conn.execute(text(f"DROP ROLE {role}"))
