"""Whole-number path parameters in ASCII digits alone.

werkzeug's `int` converter matches `\\d+`, which in Python takes any script's digits, and int()
reads them: `GET /v1/experiments/١` (an Arabic-Indic one) was experiment 1. A path parameter that
is not ASCII digits is no number here, a 404 as for `/v1/experiments/abc`.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter


class AsciiIntegerConverter(IntegerConverter):
    regex = r"[0-9]+"


def init_app(app: Flask) -> None:
    """Before any route is added: the `int` of every rule (the API's and the dashboard's)."""
    app.url_map.converters["int"] = AsciiIntegerConverter
