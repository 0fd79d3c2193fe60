"""PostgreSQL's own time, statement by statement, read from pg_stat_statements.

A benchmark that stores on PostgreSQL spends a large part of its CPU in the server; events/s and
the server's CPU say how much, this says where. The server must load the module at start
(`PostgresServer(preload=(MODULE,))`); the counts start at `reset` and are read by `report`.
"""

from __future__ import annotations

from sqlalchemy import text

from core.store.db import Database

MODULE = "pg_stat_statements"


def reset(url: str) -> None:
    """Create the view in the database at `url` (once) and zero its counts."""
    with Database(url) as db, db.session() as s:
        s.execute(text(f"CREATE EXTENSION IF NOT EXISTS {MODULE}"))
        s.execute(text("SELECT pg_stat_statements_reset()"))


def report(url: str, events: int, top: int = 8) -> list[str]:
    """The server's execution time per event in all, then its `top` statements by time, each
    with its calls, rows and first words, counted since `reset`."""
    with Database(url) as db, db.reading() as s:
        rows = s.execute(text(
            "SELECT total_exec_time, calls, rows, regexp_replace(query, '\\s+', ' ', 'g') "
            "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
            "WHERE datname = current_database()) ORDER BY total_exec_time DESC")).all()
    per_event = 1000.0 / events  # ms in all -> µs per event
    lines = [f"PostgreSQL executing statements: {sum(r[0] for r in rows) * per_event:.0f} µs "
             f"per event, {len(rows)} distinct statements"]
    for ms, calls, n_rows, query in rows[:top]:
        lines.append(f"{ms * per_event:6.1f} µs/event {calls:6d} calls {n_rows:7d} rows  "
                     f"{query[:90]}")
    return lines
