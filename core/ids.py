"""Ids that sort by creation time (UUIDv7, RFC 9562), for rows written on the request path.

A prediction id and an event id are keys of unique indexes (`served_predictions`, `outbox`).
Random ids (UUIDv4) land on a random leaf page of each index, so every commit rewrites pages all
over the index, and the more rows there are, the fewer of those pages are cached; ids that start
with the time land on the index's last page, which a batch of rows shares and which stays hot.
On SQLite, with 20,000 rows in each table, a one-row commit of the prediction path took 48 µs of
CPU instead of 66. The 74 random bits keep ids unguessable
enough for what they are used for (a correction needs the prediction's receipt anyway).
"""

from __future__ import annotations

import os
import time

MAX_ROW_ID = 2**63 - 1
"""The largest integer key a row can have (a signed 64-bit BIGINT, SQLite's INTEGER): an id
in a URL or a command past it is a 404 or a usage error, never the store's overflow."""

_VERSION = 0x7 << 76
_VARIANT = 0x2 << 62
_RANDOM = ((1 << 80) - 1) & ~(0xF << 76) & ~(0x3 << 62)  # the 74 bits left to chance


def time_ordered_id() -> str:
    """A new UUIDv7 as 32 hex digits (the same form as `uuid4().hex`): 48 bits of Unix
    milliseconds, then the version, the variant and 74 random bits."""
    millis = time.time_ns() // 1_000_000
    noise = int.from_bytes(os.urandom(10), "big") & _RANDOM
    return f"{millis << 80 | _VERSION | _VARIANT | noise:032x}"
