"""One SQLite statement that inserts a row into each of several tables, for many units at once.

The request path's durable write puts one row into each of up to three tables per request. As
plain statements that is a BEGIN, an INSERT per row and table, and a COMMIT: each a separate
`sqlite3_step`, and the driver releases the GIL around every step. On a busy server each release
hands the interpreter to another thread and the writer waits to get it back: measured on the
benchmark host (2 cores, 8 request threads and the batcher), a commit of four requests' rows
cost 0.38 ms of CPU as 14 steps, against 0.12 ms for the same work on an idle interpreter.

A fan-out runs the whole batch as one step: a TEMP view whose columns are the tables' columns
side by side, and an INSTEAD OF INSERT trigger on it that inserts each part into its table.
A multi-row INSERT into the view, in the driver's autocommit mode, is one statement: all its
rows and all its tables are stored together or not at all (a failing row aborts the statement),
and it commits by itself. The view and trigger live in the connection's TEMP schema, made the
first time a shape (the tables and the columns each sets) is written on that connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect, Table

from core.store.driver import DriverInsert

Shape = tuple[tuple[Table, tuple[str, ...]], ...]
"""The tables a unit writes, in order, each with the columns its row sets."""
Unit = Mapping[Table, Mapping[str, Any]]
"""One caller's rows: at most one row per table."""


def shape_of(unit: Unit) -> Shape:
    return tuple((table, tuple(row)) for table, row in unit.items())


class FanOut:
    """The fan-out statements of one SQLite connection (its TEMP views are its own)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        # shape -> (view name, each table's compiled insert: its parameter order and conversions)
        self._views: dict[Shape, tuple[str, tuple[DriverInsert, ...]]] = {}

    def insert(self, cursor: Any, shape: Shape, units: Sequence[Unit],
               run: Any) -> None:
        """Insert `units` (all of `shape`) with one statement, through `run(cursor, sql,
        params)`, which waits for the write lock as the caller's writes do."""
        view, inserts = self._view(cursor, shape)
        params: list[Any] = []
        for unit in units:
            for (table, _columns), insert in zip(shape, inserts, strict=True):
                params += insert.params(unit[table])
        width = sum(len(i.order or ()) for i in inserts)
        row = "(" + ",".join("?" * width) + ")"
        run(cursor, f"INSERT INTO temp.{view} VALUES " + ",".join([row] * len(units)), params)

    def _view(self, cursor: Any, shape: Shape) -> tuple[str, tuple[DriverInsert, ...]]:
        made = self._views.get(shape)
        if made is not None:
            return made
        inserts = tuple(DriverInsert.compile(table.insert(), table, self.dialect, columns)
                        for table, columns in shape)
        view = f"abvoc_fanout_{len(self._views)}"
        names: list[str] = []
        parts: list[str] = []
        for n, ((table, _columns), insert) in enumerate(zip(shape, inserts, strict=True)):
            order = insert.order or ()
            if not order or "?" not in insert.sql:
                raise ValueError(f"not a positional insert: {insert.sql}")
            mine = [f"t{n}_{i}" for i in range(len(order))]
            names += mine
            columns = ", ".join(f'"{table.c[c].name}"' for c in order)
            values = ", ".join(f"new.{m}" for m in mine)
            parts.append(f'INSERT INTO "{table.name}" ({columns}) VALUES ({values});')
        cursor.execute(f"DROP VIEW IF EXISTS temp.{view}")  # a leftover of an earlier holder
        cursor.execute(f"CREATE TEMP VIEW {view} ({', '.join(names)}) AS SELECT "
                       + ", ".join("NULL" for _ in names))
        cursor.execute(f"CREATE TEMP TRIGGER {view}_insert INSTEAD OF INSERT ON {view} "
                       f"BEGIN {' '.join(parts)} END")
        self._views[shape] = made = (view, inserts)
        return made

    def drop(self, dbapi_conn: Any) -> None:
        """Drop this connection's views (their triggers go with them) before it goes back to
        the pool."""
        cursor = dbapi_conn.cursor()
        try:
            for view, _inserts in self._views.values():
                cursor.execute(f"DROP VIEW IF EXISTS temp.{view}")
        finally:
            cursor.close()
        self._views.clear()
