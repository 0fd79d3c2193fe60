"""Portable INSERT ... ON CONFLICT for the two dialects abvoc supports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import Insert


def dialect_insert(session: Session, table: Table) -> Any:
    """An INSERT with the dialect's ON CONFLICT clauses (SQLite and PostgreSQL share them)."""
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


def insert_ignore(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> None:
    """Insert rows, silently keeping the existing row where `keys` already match."""
    if rows:
        stmt: Insert = dialect_insert(session, table).on_conflict_do_nothing(
            index_elements=list(keys)
        )
        session.execute(stmt, list(rows))


def upsert(
    session: Session,
    table: Table,
    row: Mapping[str, Any],
    keys: Sequence[str],
    update: Mapping[str, Any] | None = None,
) -> None:
    """Insert a row, or on conflict set `update` (default: the row's non-key values)."""
    stmt = dialect_insert(session, table).values(**row)
    values = update if update is not None else {k: v for k, v in row.items() if k not in keys}
    session.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=values))

