"""Insert statements compiled once and run on the driver's own cursor.

On the hot paths (the request's durable write, the worker's batch inserts, the outbox) turning
each row into parameters through SQLAlchemy's execution layer costs several times SQLite's own
work: about 25 µs a row against 2. A `DriverInsert` is compiled once per statement and column
set; rows become the driver's parameters through each column's bind processor, and returned rows
come back through each column's result processor, as SQLAlchemy would convert them. The SQL is
SQLAlchemy's own, so the dialect still writes it.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Dialect, Table
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Insert

Convert = Callable[[Any], Any] | None
MAX_CHUNK = 1024  # rows in one multi-row statement (fewer where the parameter limit says)


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one per statement
class DriverInsert:
    """One compiled INSERT: its SQL, the parameter order (None for named parameters), each
    column's bind conversion and, with RETURNING, the returned rows' shape and conversions."""

    sql: str
    order: tuple[str, ...] | None
    convert: Mapping[str, Convert]
    returned: Any = None  # a namedtuple class of the RETURNING columns
    results: tuple[Convert, ...] = ()
    converted: tuple[tuple[int, Callable[[Any], Any]], ...] = ()  # (position, conversion)

    @classmethod
    def compile(cls, stmt: Insert, table: Table, dialect: Dialect,
                columns: Sequence[str]) -> DriverInsert:
        compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
        convert = {c: _bind_conversion(table.c[c].type.dialect_impl(dialect), dialect)
                   for c in columns}
        order = tuple(compiled.positiontup) if compiled.positional else None
        returning = list(compiled.returning or ())
        returned = namedtuple("Returned", [c.key for c in returning]) if returning else None
        results = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None)
                        for c in returning)
        converted = tuple((i, f) for i, c in enumerate(order or ()) if (f := convert[c]))
        return cls(str(compiled), order, convert, returned, results, converted)

    def params(self, row: Mapping[str, Any]) -> list | dict:
        """A row as the driver's parameters (a list in `order`, or a dict when named). Only
        the columns with a conversion are touched one by one: most of a row goes as it is."""
        if self.order is None:
            convert = self.convert
            return {c: (v if (f := convert[c]) is None or v is None else f(v))
                    for c, v in row.items()}
        values = list(map(row.__getitem__, self.order))
        for i, f in self.converted:
            if (v := values[i]) is not None:
                values[i] = f(v)
        return values

    def rows(self, fetched: Sequence[Sequence[Any]]) -> list[Any]:
        """Returned driver rows as named rows of Python values."""
        make, results = self.returned._make, self.results
        if not any(results):  # ids and text: the driver's values are the Python ones
            return list(map(make, fetched))
        return [make([f(v) if f is not None else v for f, v in zip(results, r, strict=True)])
                for r in fetched]


def _bind_conversion(impl: Any, dialect: Dialect) -> Convert:
    """A column's bind conversion; SQLite's datetimes through ``isoformat``, which writes the
    same text as SQLAlchemy's default storage format at half the cost (the offset cut off, as
    that format leaves it out). A batch's rows often share one time object (the moment the
    batch was applied): the text of the last one converted is reused for the same object."""
    process = impl.bind_processor(dialect)
    if not (isinstance(impl, sqlite.DATETIME)
            and impl._storage_format == sqlite.DATETIME._storage_format):
        return process
    last: tuple[Any, str] = (object(), "")  # replaced whole: threads never see half of it

    def isoformat(value: Any) -> Any:
        nonlocal last
        seen = last
        if value is seen[0]:
            return seen[1]
        if type(value) is datetime:
            text = value.isoformat(" ", "microseconds")[:26]
            last = (value, text)
            return text
        return process(value)

    return isoformat


@lru_cache(maxsize=256)
def driver_insert(stmt: Insert, table: Table, dialect: Dialect,
                  columns: tuple[str, ...]) -> DriverInsert:
    """The compiled form of a cached statement (callers keep their statements cached too)."""
    return DriverInsert.compile(stmt, table, dialect, columns)


def sqlite_write_rows(session: Session, stmt: Insert, table: Table,
                      rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Run a cached INSERT for `rows` (all with the same columns) in the session's SQLite
    transaction on the driver's cursor: one executemany, or with RETURNING one multi-row VALUES
    statement per chunk of the driver's parameter limit (executemany drops RETURNING rows).
    Returns the returned rows. Driver errors are raised as SQLAlchemy's, as the rest of the
    service sees them."""
    session.flush()  # ORM objects added earlier in this unit of work go first, as with execute
    dialect = session.get_bind().dialect
    insert = driver_insert(stmt, table, dialect, tuple(rows[0]))
    params = [insert.params(r) for r in rows]
    conn = session.connection().connection
    cursor = conn.cursor()
    try:
        fetched = values_chunks(cursor, insert, params, variable_limit(conn))
        return [] if insert.returned is None else insert.rows(fetched)
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(insert.sql, None, exc, dialect.loaded_dbapi.Error,
                                  dialect=dialect) from exc
    finally:
        cursor.close()


def variable_limit(conn: Any) -> int:
    """How many parameters one statement may take on this pooled SQLite connection."""
    return conn.dbapi_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


def values_chunks(cursor: Any, insert: DriverInsert, params: Sequence[Sequence[Any]],
                  limit: int) -> list[Sequence[Any]]:
    """Run `insert` for every row of `params` on a SQLite cursor as one multi-row VALUES
    statement per chunk; the rows any RETURNING gave back.

    Why not executemany: it releases the GIL around each row's step, and where other threads
    want it (a serving process's request threads) each release can cost a thread switch and up
    to the interpreter's switch interval before the writer runs again; 50 rows of 3 tables took
    141 µs of CPU a row against 48 in one statement a chunk, with two busy threads beside them
    (and executemany drops RETURNING rows). Chunks are powers of two, largest first, so a
    handful of statement texts serve every batch size and SQLite's statement cache keeps them
    prepared: a fresh 400-row statement costs as much to prepare as to run. Named-parameter
    statements (no positional order) go through executemany, which cannot return rows."""
    if not params:
        return []
    width = len(params[0])
    single = "(" + ", ".join("?" * width) + ")"
    if insert.order is None or f"VALUES {single}" not in insert.sql:
        if insert.returned is not None:
            raise ValueError(f"not a single-row positional INSERT: {insert.sql}")
        cursor.executemany(insert.sql, params)
        return []
    largest = 1 << (min(MAX_CHUNK, max(1, limit // width)).bit_length() - 1)
    fetched: list[Sequence[Any]] = []
    lo = 0
    while lo < len(params):
        size = min(largest, 1 << ((len(params) - lo).bit_length() - 1))
        chunk = params[lo: lo + size]
        sql = insert.sql if size == 1 else _chunk_sql(insert.sql, single, size)
        cursor.execute(sql, [v for p in chunk for v in p])
        if insert.returned is not None:
            fetched += cursor.fetchall()
        lo += size
    return fetched


@lru_cache(maxsize=512)
def _chunk_sql(sql: str, single: str, size: int) -> str:
    return sql.replace(f"VALUES {single}", "VALUES " + ", ".join([single] * size), 1)
