"""Times a caller sends: RFC 3339 with an offset, so that no request means local time by
accident (a time without one is refused, naming the field)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from core.errors import AbvocError

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
EXAMPLE = "2026-11-30T08:00:00Z"


def parse_rfc3339(text: str, name: str) -> datetime:
    """`text` as an aware UTC datetime; a 400 naming `name` when it is not RFC 3339 with an
    offset, or not a real time."""
    if not RFC3339.match(text):
        raise AbvocError(f"'{name}' must be an RFC 3339 time with its offset, e.g. {EXAMPLE}")
    try:
        return datetime.fromisoformat(text.upper()).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise AbvocError(f"'{name}' {text[:64]!r} is not a real time; send e.g. {EXAMPLE}") \
            from exc


def utc_iso(moment: datetime | None) -> str | None:
    """ISO 8601 with its UTC offset: SQLite hands stored times back naive (they are UTC), so a
    reread row would otherwise lose the '+00:00' a fresh one has."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
