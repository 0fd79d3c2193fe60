"""Reading a team's JSON files (offline dataset lines, imported results) as untrusted input:
UTF-8 or a clear error (the json module would guess UTF-16 from the first bytes and say that),
nesting past Python's recursion limit refused as such, never a RecursionError traceback, and
integers past 2^53 refused with their place, as the API refuses them in request bodies: no
float holds them exactly, and the checks' `math.isfinite` of a 401-digit one is an
OverflowError traceback, not a message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from serving.bundles.offline_metrics import OfflineError

MAX_INTEGER = 2**53  # the API's bound on JSON numbers (app.inputs.MAX_NUMBER)
# 2^53 has 16 digits: text without a run of 16 holds no integer past it, and is not walked.
_LONG_DIGITS = re.compile(rb"\d{16}")


@contextmanager
def not_too_deep(where: str) -> Iterator[None]:
    """Refuse, naming `where`, what recursed too deep inside: json, numpy and repr recurse
    once per level of nesting."""
    try:
        yield
    except RecursionError as exc:
        raise OfflineError(f"{where} is nested too deeply") from exc


def parse_json(raw: bytes, where: str, free: Collection[str] = ()) -> Any:
    """The JSON in `raw`, or an error naming `where`: not UTF-8, not JSON, too deep, or holding
    an integer past 2^53 outside the top-level keys in `free` (tensor data, which the input's
    own datatype bounds: INT64 reaches 2^63)."""
    with not_too_deep(where):
        try:
            value = json.loads(utf8(raw, where))
        except ValueError as exc:
            if "integer string conversion" in str(exc):  # past Python's 4,300 digits
                raise OfflineError(f"{where} holds a number of thousands of digits, which is "
                                   "out of range") from None
            raise OfflineError(f"{where} is not JSON: {exc}") from exc
    if _LONG_DIGITS.search(raw) and (found := _big_integer(value, free)) is not None:
        place, number = found
        raise OfflineError(f"{where}: {place} must be a finite number of at most 2^53 "
                           f"({MAX_INTEGER}) in size, got the integer {_shown(number)}")
    return value


def _big_integer(value: Any, free: Collection[str]) -> tuple[str, int] | None:
    """(place, integer) of the first integer past 2^53 in `value`, walked without recursion (a
    deep value would otherwise be a RecursionError here)."""
    todo: list[tuple[tuple[str | int, ...], Any]]
    if isinstance(value, dict):
        todo = [((k,), v) for k, v in value.items() if k not in free]
    else:
        todo = [((), value)]
    todo.reverse()
    while todo:
        steps, item = todo.pop()
        if isinstance(item, dict):
            todo.extend(((*steps, k), v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            todo.extend(((*steps, i), item[i]) for i in range(len(item) - 1, -1, -1))
        elif type(item) is int and abs(item) > MAX_INTEGER:
            return _place(steps), item
    return None


def _place(steps: tuple[str | int, ...]) -> str:
    """Where in the value: 'label' (a top-level key), label['sum'][1], [0] or the value."""
    if not steps:
        return "the value"
    head, *rest = steps
    if not rest and isinstance(head, str):
        return repr(head)
    start = head if isinstance(head, str) and head.isidentifier() else f"[{head!r}]"
    return start + "".join(f"[{step!r}]" for step in rest)


def _shown(number: int) -> str:
    text = str(number)
    return text if len(text) <= 24 else f"{text[:20]}... ({len(text.lstrip('-'))} digits)"


def utf8(raw: bytes, where: str) -> str:
    """The bytes as UTF-8 text (a leading byte-order mark dropped), or an error naming `where`."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OfflineError(f"{where} is not UTF-8 text: byte {raw[exc.start]:#04x} at position "
                           f"{exc.start}") from exc
