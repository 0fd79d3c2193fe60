"""Whole-number path parameters in ASCII digits alone.

werkzeug's `int` converter matches `\\d+`, which in Python takes any script's digits, and int()
reads them: `GET /v1/experiments/١` (an Arabic-Indic one) was experiment 1. A path parameter that
is not ASCII digits is no number here, a 404 as for `/v1/experiments/abc`.

A row's id in a path (`row_id`) is any ASCII number, and one no row can have (0, or past a
64-bit key) is that resource's own 404: with `int(min=1, max=...)` it matched no route, so
`/v1/experiments/0` got werkzeug's "The requested URL was not found on the server", where an id
in range that no row has gets "experiment N does not exist".
"""

from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter, Map

from core.ids import MAX_ROW_ID


class AsciiIntegerConverter(IntegerConverter):
    regex = r"[0-9]+"


class RowIdConverter(AsciiIntegerConverter):
    """`<row_id("experiment"):experiment_id>`: the id of a row of `what`, 1 to MAX_ROW_ID; out
    of that range, the 404 says `what` does not exist (nothing is looked up: the store cannot
    take a number past 64 bits)."""

    def __init__(self, url_map: Map, what: str) -> None:
        super().__init__(url_map)
        self.what = what

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= MAX_ROW_ID:
            # Not a ValidationError, which would answer werkzeug's generic 404 (or a 405).
            raise NotFound(f"{self.what} {number} does not exist")
        return number


def row_id(what: str, name: str) -> str:
    """A rule's path part for the id of a row of `what` (an experiment) as argument `name`."""
    return f'<row_id("{what}"):{name}>'


def init_app(app: Flask) -> None:
    """Before any route is added: the `int` of every rule (the API's and the dashboard's), and
    `row_id`."""
    app.url_map.converters["int"] = AsciiIntegerConverter
    app.url_map.converters["row_id"] = RowIdConverter
