"""Migration requests that cannot be what the operator meant are said so: an upgrade to a
revision below the store's (Alembic did nothing and exited 0), a downgrade of an empty store
(Alembic's "Relative revision -1 didn't produce 1 migrations")."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core.errors import AbvocError
from core.store import schema
from core.store.db import Database


def test_an_upgrade_below_the_store_or_a_downgrade_of_nothing_is_refused(db: Database) -> None:
    schema.downgrade(db, "0010")
    with pytest.raises(AbvocError, match=r"the store is at revision 0010, past 0005: to go "
                                         r"back, `abvoc db downgrade 0005`"):
        schema.upgrade(db, "0005")
    assert schema.current(db) == "0010"
    with pytest.raises(AbvocError, match=r"the store is at revision 0010, past base: to go "
                                         r"back, `abvoc db downgrade base`"):
        schema.upgrade(db, "base")  # Alembic did nothing, and the command said "at 0010"
    schema.upgrade(db, "0010")  # where it is: nothing to do, no error
    schema.downgrade(db, "base")
    with pytest.raises(AbvocError, match="the store is at base \\(no tables\\): nothing to "
                                         "downgrade"):
        schema.downgrade(db)
    schema.upgrade(db)
    assert schema.status(db) == schema.CURRENT


def test_reading_the_revision_is_quiet_and_agrees_with_alembic(
        db: Database, caplog: pytest.LogCaptureFixture) -> None:
    """Every /readyz read it through Alembic, which logged two lines each time."""
    import logging

    from alembic.runtime.migration import MigrationContext

    with caplog.at_level(logging.INFO):
        for _ in range(3):
            assert schema.status(db) == schema.CURRENT
    assert not [r for r in caplog.records if r.name.startswith("alembic")], caplog.text
    with db.engine.connect() as conn:
        assert schema.current(db) == MigrationContext.configure(conn).get_current_revision()
    schema.downgrade(db, "-1")
    assert schema.status(db) == schema.BEHIND


def test_a_store_never_migrated_has_no_revision(tmp_path) -> None:  # noqa: ANN001
    fresh = Database(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        assert schema.current(fresh) is None and schema.status(fresh) == schema.BEHIND
    finally:
        fresh.dispose()


def test_a_refused_step_on_a_newer_store_is_said_whole_on_one_line(db: Database) -> None:
    """`abvoc db downgrade` run by the older version on a store a newer one migrated: the note
    was cut to 200 characters in its middle, losing "with the newer version", the one thing to
    do differently, so it read as "run the command you just ran"; and a revision holding a
    newline split Alembic's words over two lines."""
    head = schema.head(db)
    with db.session() as s:
        s.execute(text("UPDATE alembic_version SET version_num = '9999_newer'"))
    with pytest.raises(AbvocError) as refused:
        schema.downgrade(db, head)
    assert "…" not in refused.value.message
    assert f"move the schema back with the newer version (`abvoc db downgrade {head}`)" in \
        refused.value.message
    with db.session() as s:
        s.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    with pytest.raises(AbvocError) as refused:
        schema.upgrade(db, "no\nsuch")
    assert "\n" not in refused.value.message, refused.value.message
