"""Reading a team's JSON files (offline dataset lines, imported results) as untrusted input:
UTF-8 or a clear error (the json module would guess UTF-16 from the first bytes and say that),
and nesting past Python's recursion limit refused as such, never a RecursionError traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from serving.bundles.offline_metrics import OfflineError


@contextmanager
def not_too_deep(where: str) -> Iterator[None]:
    """Refuse, naming `where`, what recursed too deep inside: json, numpy and repr recurse
    once per level of nesting."""
    try:
        yield
    except RecursionError as exc:
        raise OfflineError(f"{where} is nested too deeply") from exc


def parse_json(raw: bytes, where: str) -> Any:
    """The JSON in `raw`, or an error naming `where`: not UTF-8, not JSON, or too deep."""
    with not_too_deep(where):
        try:
            return json.loads(utf8(raw, where))
        except ValueError as exc:
            raise OfflineError(f"{where} is not JSON: {exc}") from exc


def utf8(raw: bytes, where: str) -> str:
    """The bytes as UTF-8 text (a leading byte-order mark dropped), or an error naming `where`."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OfflineError(f"{where} is not UTF-8 text: byte {raw[exc.start]:#04x} at position "
                           f"{exc.start}") from exc
