"""Clean stops live in `component_stops`, never on heartbeat rows, so a rollback past 0026
leaves older abvoc nodes only rows they read right (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import inspect, text

from core.health import Heartbeat, component_checks
from core.store import schema
from core.store.db import Database


def test_a_rollback_past_0026_leaves_no_heartbeat_row_an_older_node_misreads(
        db: Database) -> None:
    """0026 kept a cleanly stopped instance's heartbeat row, marked `stopped_at`; its downgrade
    dropped the mark and kept the row, so after a rollback (and the upgrade after it) every
    stopped part read as dead: 503 on old and new nodes alike."""
    running, stopped = Heartbeat(db, "relay"), Heartbeat(db, "worker")
    running.beat()
    stopped.beat()
    stopped.forget()
    schema.downgrade(db, "0025")
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT component, instance FROM component_heartbeats")).all()
    assert [tuple(r) for r in rows] == [("relay", running.instance)]
    assert "component_stops" not in inspect(db.engine).get_table_names()
    schema.upgrade(db)  # upgraded again: the stops went with the rollback, no row reads dead
    assert component_checks(db) == {"relay": "ok"}
    stopped.beat()
    stopped.forget()
    assert component_checks(db, expected=["worker"])["worker"].startswith("down: stopped")
