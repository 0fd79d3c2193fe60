"""The SQL store: migrations equal the models, and run both ways, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from core.store import Base, schema
from core.store.db import Database


def test_migrated_schema_equals_the_models(db: Database) -> None:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    assert schema.is_current(db)


def test_downgrade_to_base_and_up_again(db: Database) -> None:
    schema.downgrade(db, "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    schema.upgrade(db)
    tables = set(inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_0025_dates_a_status_only_where_the_store_kept_its_time(db: Database) -> None:
    """Before 0025 a kill or a pause kept no time: those stay undated, not dated with the
    experiment's start, and so does a run (it may have been paused and resumed since); a stop
    takes its `stopped_at`, a draft its `created_at`."""
    schema.downgrade(db, "0024")
    created, started, stopped = (datetime(2026, 11, day, 9, tzinfo=UTC) for day in (1, 2, 3))
    rows = {"draft": ("", None, None), "running": ("", started, None),
            "stopped": ("", started, stopped), "paused": ("paused by an operator", started, None),
            "killed": ("kill switch", started, None),
            "guarded": ("arm 't' paused: error rate", started, None)}
    with db.engine.begin() as conn:
        for name, (reason, start, stop) in rows.items():
            conn.execute(text(
                "INSERT INTO experiments (name, scope, status, unit, salt, arms, allocation, "
                "shadows, canary, guardrails, primary_metric, status_reason, created_at, "
                "started_at, stopped_at) VALUES (:n, :n, :s, 'user', 'x', '[]', '{}', '[]', "
                "'{}', '{}', 'correction_rate', :r, :c, :a, :b)"),
                {"n": name, "s": "running" if name == "guarded" else name, "r": reason,
                 "c": created, "a": start, "b": stop})
    schema.upgrade(db)
    with db.engine.connect() as conn:
        since = dict(conn.execute(text("SELECT name, status_since FROM experiments")).all())
    kept = {name: None if at is None else _utc(at) for name, at in since.items()}
    assert kept == {"draft": created, "running": None, "stopped": stopped, "paused": None,
                    "killed": None, "guarded": None}


def _utc(value: str | datetime) -> datetime:
    """A timestamp as SQLite (text) or PostgreSQL (a datetime) gives it back, in UTC."""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
