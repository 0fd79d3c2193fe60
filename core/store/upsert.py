"""Portable INSERT ... ON CONFLICT for the two dialects abvoc supports."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Float,
    LargeBinary,
    Row,
    String,
    Table,
    Text,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import Insert
from sqlalchemy.types import TypeDecorator

from core.store import json_text
from core.store.driver import sqlite_write_rows
from core.store.pg_copy import copy_rows


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


def insert_many(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """A plain INSERT of many rows (all setting the same columns), all or none: on SQLite
    through the driver's cursor (see core.store.driver); on PostgreSQL as a binary COPY (see
    core.store.pg_copy), or for a few rows as one statement as :func:`insert_rows` writes it,
    without its ON CONFLICT clause."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        sqlite_write_rows(session, _plain_insert(table), table, rows)
    elif not copy_rows(session, table, rows):
        _pg_execute(session, table, tuple(rows[0]), rows, None, (), ())


@lru_cache(maxsize=64)
def _plain_insert(table: Table) -> Insert:
    return table.insert()


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


def insert_rows(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    *,
    add: Sequence[str] = (),
    returning: Sequence[str] = (),
) -> Sequence[Row[Any]]:
    """Insert many rows in one statement: where `keys` already match, keep the existing row, or
    add the `add` columns onto it. Returns the `returning` columns of the rows written.

    Rows are written in the order given (callers sort them so that concurrent writers lock keys
    in one order). On SQLite they go through the driver's cursor (see core.store.driver). On
    PostgreSQL the rows travel as one JSON text that the server turns back into rows of the
    table's own types (``json_populate_record``): orjson writes it in C, where the driver dumps
    an array parameter element by element in Python (a third of the worker's time on
    PostgreSQL, sampled); bytes go in it as ``bytea``'s hex text. What JSON cannot carry
    exactly (a float that is not finite, a value orjson refuses) travels as one array per
    column through ``unnest`` instead. Either way it is one
    parameter per column at most: a multi-row VALUES list costs the driver a parse of every
    placeholder, per batch.
    """
    if not rows:
        return []
    columns, keys, add, returning = tuple(rows[0]), tuple(keys), tuple(add), tuple(returning)
    if session.get_bind().dialect.name != "postgresql":
        stmt = _values_insert(table, columns, keys, add, returning)
        return sqlite_write_rows(session, stmt, table, rows)
    return _pg_execute(session, table, columns, rows, keys, add, returning)


def _pg_execute(session: Session, table: Table, columns: tuple[str, ...],
                rows: Sequence[Mapping[str, Any]], keys: tuple[str, ...] | None,
                add: tuple[str, ...], returning: tuple[str, ...]) -> Sequence[Row[Any]]:
    document = _json_document(table, columns, rows)
    params = {"rows": document} if document is not None else {
        f"a_{c}": _column_values(table, c, rows) for c in columns}
    stmt = _pg_insert(table, columns, keys, add, returning, document is not None)
    result = session.execute(stmt, params)
    return result.all() if returning else []


def _json_document(table: Table, columns: tuple[str, ...],
                   rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The rows as one JSON array of objects, or None where JSON would not carry them exactly:
    orjson refuses the value (numpy scalars, an integer past 64 bits, a lone surrogate) or a
    float is not finite (orjson would write null). Bytes go as ``bytea``'s hex text (``\\x``
    and two digits a byte), which the server reads back into the column's bytes."""
    binary = [c for c in columns if isinstance(table.c[c].type, LargeBinary)]
    for c in columns:
        if isinstance(table.c[c].type, Float) and not all(
                v is None or math.isfinite(v) for v in (r[c] for r in rows)):
            return None
    objects = [r if type(r) is dict else dict(r) for r in rows]
    if binary:
        objects = [{**r, **{c: _hex(r[c]) for c in binary}} for r in objects]
    try:
        return orjson.dumps(objects).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return None


def _hex(value: Any) -> Any:
    """A bytes value as the text ``bytea`` reads (other values as they are: None, or a value
    orjson refuses and so sends the batch by the array path)."""
    return "\\x" + value.hex() if isinstance(value, bytes | bytearray | memoryview) else value


def _column_values(table: Table, column: str, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """One column as an array parameter: JSON as text, floats as floats (the driver refuses an
    array that mixes ``int`` and ``float``)."""
    type_ = table.c[column].type
    if isinstance(type_, JSON):
        return [json_text.dumps(r[column]) for r in rows]
    if isinstance(type_, Float):
        return [None if (v := r[column]) is None else float(v) for r in rows]
    return [r[column] for r in rows]


def _on_conflict(stmt: Any, table: Table, keys: tuple[str, ...], add: tuple[str, ...]) -> Any:
    if not add:  # without keys: skip a row that conflicts on any unique constraint
        return stmt.on_conflict_do_nothing(index_elements=list(keys) or None)
    return stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: table.c[c] + stmt.excluded[c] for c in add}
    )


@lru_cache(maxsize=64)
def _values_insert(
    table: Table,
    columns: tuple[str, ...],
    keys: tuple[str, ...],
    add: tuple[str, ...],
    returning: tuple[str, ...],
) -> Any:
    stmt = _on_conflict(sqlite.insert(table), table, keys, add)
    return stmt.returning(*(table.c[c] for c in returning)) if returning else stmt


@lru_cache(maxsize=128)
def _pg_insert(
    table: Table,
    columns: tuple[str, ...],
    keys: tuple[str, ...] | None,
    add: tuple[str, ...],
    returning: tuple[str, ...],
    document: bool,
) -> Any:
    """``INSERT INTO t (cols) SELECT ... ORDER BY ord ON CONFLICT ...``, the rows coming from
    one JSON document (``document``) or from one array per column; `keys` None: a plain
    INSERT, no ON CONFLICT clause.

    The document: ``json_populate_recordset(NULL::t, :rows) WITH ORDINALITY``, the array parsed
    once into rows of the table's type (JSON values keep their text; about 15 % less server
    time than splitting the array and parsing each element again). The arrays:
    ``unnest(:a_col::type[], ...) WITH ORDINALITY``. ORDER BY the ordinality keeps the
    caller's row order: it is the order rows are locked and numbered."""
    if document:
        row_type = postgresql.dialect().identifier_preparer.format_table(table)
        # Columns by name (the function returns every column of the row type), and the
        # ordinality under PostgreSQL's own name for it.
        records = (func.json_populate_recordset(literal_column(f"NULL::{row_type}"),
                                                cast(bindparam("rows", type_=Text),
                                                     postgresql.JSON))
                   .table_valued(*(column(c) for c in columns), with_ordinality="ordinality"))
        rows = select(*(records.c[c] for c in columns)).order_by(records.c.ordinality)
    else:
        # psycopg's dialect renders each bind with its cast: %(a_col)s::TYPE[]
        arrays = [bindparam(f"a_{c}", type_=postgresql.ARRAY(
            postgresql.TEXT() if isinstance(table.c[c].type, JSON) else table.c[c].type))
            for c in columns]
        source = (func.unnest(*arrays).table_valued(*columns, with_ordinality="ord")
                  .render_derived())
        rows = select(*(cast(source.c[c], table.c[c].type)
                        if isinstance(table.c[c].type, JSON) else source.c[c]
                        for c in columns)).order_by(source.c.ord)
    stmt = postgresql.insert(table).from_select(columns, rows)
    if keys is not None:
        stmt = _on_conflict(stmt, table, keys, add)
    return stmt.returning(*(table.c[c] for c in returning)) if returning else stmt


class JsonList(TypeDecorator):
    """A list parameter sent as the text of one JSON array, which the server splits in C.
    psycopg writes a list parameter (a PostgreSQL array) element by element in Python: for the
    worker's batches of ids, about a seventh of its time on PostgreSQL (sampled); SQLite has
    no list parameter at all (one placeholder per value)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else json_text.dumps(list(value))


def json_elements(param: Any, element_type: Any, dialect: str) -> tuple[Any, Any, Any]:
    """The elements of a :class:`JsonList` parameter as a row source split by the server
    (``json_each`` on SQLite, ``json_array_elements_text`` on PostgreSQL), its value column
    and its position in the array (to order by). On PostgreSQL the value is
    cast to `element_type`, text left unbounded: a cast to ``VARCHAR(n)`` would cut a longer
    value short, silently (SQLite's values keep their JSON type)."""
    if dialect != "postgresql":
        source = func.json_each(param).table_valued("value", "key")
        return source, source.c.value, source.c.key
    if isinstance(element_type, String):
        element_type = Text()
    source = (func.json_array_elements_text(cast(param, postgresql.JSON))
              .table_valued("value", with_ordinality="ord").render_derived())
    return source, cast(source.c.value, element_type), source.c.ord


def _json_in(column_: Any, param: Any, dialect: str) -> Any:
    """``column IN`` the elements of a :class:`JsonList` parameter."""
    source, value, _ = json_elements(param, column_.type, dialect)
    return column_.in_(select(value).select_from(source))


def in_param(column: Any, name: str, dialect: str) -> Any:
    """``column IN :name`` for a statement built once and run many times (its values given at
    execution) as one JSON array parameter (see :class:`JsonList`), as :func:`in_values`
    writes it. Building a statement costs several times running a small one, so the worker's
    per-batch statements are built once per dialect."""
    return _json_in(column, bindparam(name, type_=JsonList()), dialect)


def in_values(session: Session, column: Any, values: Sequence[Any]) -> Any:
    """``column IN values`` as one JSON array parameter (see :class:`JsonList`). An expanded IN
    list costs a placeholder to bind per value, and on SQLite a statement text (prepared
    afresh) per list length: a select by 400–500 ids took 3.9–4.2 → 2.3–2.5 ms (median of 30)."""
    return _json_in(column, bindparam(None, list(values), type_=JsonList()),
                    session.get_bind().dialect.name)
