"""Plain batch inserts on PostgreSQL through ``COPY ... FROM STDIN`` in binary.

An INSERT whose rows arrive as one JSON document (core.store.upsert) makes the server parse
that document and each value's text again (bytes as hex), and plan the statement: for the
outbox's batches of 100 events, about 40 µs of PostgreSQL's CPU a row. Binary COPY hands the
server each value in its own binary form, with nothing to plan: about 23 µs a row, and
psycopg writes the rows in C. COPY has no ON CONFLICT and no RETURNING, so it serves only the
plain inserts (the outbox, the embedded bus's log, the worker's batches of fresh predictions),
and for a row or two the INSERT's one round trip is cheaper than COPY's two, so small batches
keep it. JSON values go as the text the engine's serializer writes (core.store.json_text), as
SQLAlchemy's JSON type writes them; a JSON column's None, which that type writes as JSON
``null`` and COPY would write as SQL NULL, keeps the INSERT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from psycopg.types.json import set_json_dumps
from sqlalchemy import JSON, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from core.store import json_text

MIN_ROWS = 8
"""Batches smaller than this go as one INSERT (one round trip against COPY's two)."""

_TYPES = {"VARCHAR": "varchar", "TEXT": "text", "BYTEA": "bytea", "INTEGER": "int4",
          "BIGINT": "int8", "SMALLINT": "int2", "BOOLEAN": "bool",
          "TIMESTAMP WITH TIME ZONE": "timestamptz", "TIMESTAMP WITHOUT TIME ZONE": "timestamp",
          "FLOAT": "float8", "DOUBLE PRECISION": "float8", "JSON": "json"}
"""The column types COPY here writes, by the name PostgreSQL's dialect gives them, as the
type names psycopg dumps binary values for (the rest keep the INSERT)."""


@lru_cache(maxsize=64)
def copy_statement(table: Table, columns: tuple[str, ...]
                   ) -> tuple[str, tuple[str, ...], tuple[str, ...]] | None:
    """The COPY statement for these columns of `table`, each column's type name and the
    JSON columns that write None as JSON null, or None when a column has a type it does not
    write."""
    dialect = postgresql.dialect()
    types = []
    for name in columns:
        compiled = table.c[name].type.compile(dialect=dialect).split("(")[0].strip()
        if compiled not in _TYPES:
            return None
        types.append(_TYPES[compiled])
    json_nulls = tuple(c for c in columns if isinstance(table.c[c].type, JSON)
                       and not table.c[c].type.none_as_null)
    quote = dialect.identifier_preparer
    sql = (f"COPY {quote.format_table(table)} "
           f"({', '.join(quote.quote(c) for c in columns)}) FROM STDIN (FORMAT BINARY)")
    return sql, tuple(types), json_nulls


def copy_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> bool:
    """COPY `rows` (all with the same columns) into `table` in the session's transaction, in
    order; False, having written nothing, where COPY does not serve (too few rows, a column
    type it does not write, a None for JSON null). Driver errors are raised as SQLAlchemy's,
    as an INSERT's are."""
    if len(rows) < MIN_ROWS:
        return False
    columns = tuple(rows[0])
    statement = copy_statement(table, columns)
    if statement is None:
        return False
    sql, types, json_nulls = statement
    if any(row[c] is None for c in json_nulls for row in rows):
        return False
    session.flush()  # ORM objects added earlier in this unit of work go first
    connection = session.connection()
    dbapi = connection.dialect.loaded_dbapi
    cursor = connection.connection.cursor()
    if "json" in types:  # the outbox's and the log's batches have none: no adapter to set
        set_json_dumps(json_text.dumps, cursor)
    try:
        with cursor.copy(sql) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row([row[c] for c in columns])
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, None, exc, dbapi.Error,
                                  dialect=connection.dialect) from exc
    finally:
        cursor.close()
    return True
