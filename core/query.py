"""A route's query parameters checked against the ones it reads, for the API and the
dashboard's downloads alike: a typo or a repeated parameter must not silently give another
answer (a whole experiment, another queue's items, the first of two tables); and numbers
written as text (queries, Label Studio labels) read only when written in plain ASCII digits."""

from __future__ import annotations

import re
from typing import Any

from core.errors import AbvocError
from core.text import quoted_names


def check_query(args: Any, *known: str) -> None:
    """A 400 (AbvocError) for a parameter of `args` (a werkzeug MultiDict: the request's) that
    is not `known`, or a known one given more than once."""
    if unknown := sorted(set(args) - set(known)):
        # quoted as typed, not as a Python list's repr (brackets, and \\ for a backslash)
        raise AbvocError(f"unknown query parameter(s) {quoted_names(unknown, 60)}; this route "
                         f"takes {', '.join(known) or 'none'}")
    if repeated := sorted(k for k in known if len(args.getlist(k)) > 1):
        raise AbvocError(f"query parameter(s) {quoted_names(repeated)} given more than once; "
                         "give each once (which one was meant cannot be told)")


def whole_number(raw: str, low: int, high: int) -> int | None:
    """`raw` as a whole number from `low` to `high` written in ASCII digits alone, else None:
    int() also reads '1_0', ' 1', '+1' and other scripts' digits ('١', '２'), which no caller
    means as a number here."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 20:  # 20: any int64, unpadded
        return None
    value = int(raw)
    return value if low <= value <= high else None


# One way to match each text (no backtracking over long digit runs): 12, 1.5, .5, 2.5e3.
_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", re.ASCII)
PLAIN_DECIMAL = "plain ASCII digits, like 1000 or 2.5e3"
"""How a number written as text must look, for messages."""


def plain_decimal(raw: str, *, signed: bool = False) -> float | None:
    """`raw` as a number written in plain ASCII decimal (a leading '-' where `signed`), else
    None: float() also reads '1_000', ' 3 ', 'nan' and other scripts' digits ('０', '١')."""
    body = raw[1:] if signed and raw.startswith("-") else raw
    if not _DECIMAL.fullmatch(body):
        return None
    return float(raw)
