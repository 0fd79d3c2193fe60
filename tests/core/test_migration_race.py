"""Services starting together on a fresh database all migrate it: one runs the migrations, the
others wait and find the schema at head (before, all but one died with a duplicate key on
PostgreSQL's `alembic_version`)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select, text

from core.errors import AbvocError
from core.store import schema
from core.store.db import Database

MIGRATE = """
import sys, time
from core.store import schema
from core.store.db import Database
url, start = sys.argv[1], float(sys.argv[2])
db = Database(url)
db.check()
time.sleep(max(0.0, start - time.time()))  # all three begin at the same moment
schema.upgrade(db)
db.dispose()
"""


def test_processes_migrating_a_fresh_database_at_once_all_succeed(
    empty_database_url: str,
) -> None:
    start = time.time() + 4.0  # after every interpreter has imported SQLAlchemy and Alembic
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, empty_database_url, str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(outputs)
    db = Database(empty_database_url)
    try:
        assert schema.is_current(db)
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        db.dispose()


def test_a_migration_that_fails_releases_the_lock(empty_database_url: str) -> None:
    """The lock goes with the step whatever its end: another process is not held back."""
    db, other = Database(empty_database_url), Database(empty_database_url)
    try:
        with pytest.raises(AbvocError):
            schema.upgrade(db, "no-such-revision")
        if db.dialect == "postgresql":
            with other.engine.connect() as conn:
                assert conn.execute(select(func.pg_try_advisory_lock(schema.MIGRATION_LOCK))) \
                    .scalar() is True
                conn.execute(select(func.pg_advisory_unlock(schema.MIGRATION_LOCK)))
        schema.upgrade(other)
        assert schema.is_current(other)
    finally:
        db.dispose()
        other.dispose()
