"""Times a caller sends: RFC 3339 with an offset, so that no request means local time by
accident (a time without one is refused, naming the field)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import overload

from core.errors import AbvocError
from core.text import shown

# The offset's hours 00-23 and minutes 00-59 (RFC 3339's time-numoffset): Python reads
# "+05:99" as +06:39.
# ASCII digits: `\d` took any script's ('２026-...'), which fromisoformat then refused as "not
# a real time".
RFC3339 = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
                     r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")
EXAMPLE = "2026-11-30T08:00:00Z"


def parse_rfc3339(text: str, name: str) -> datetime:
    """`text` as an aware UTC datetime; a 400 naming `name` when it is not RFC 3339 with an
    offset, or not a real time."""
    if not RFC3339.fullmatch(text):
        # A '+' left unencoded in a query string arrives as a space.
        plus = ("; a '+' in a URL's query string must be sent as %2B (or give the time in UTC, "
                "with Z)" if RFC3339.fullmatch(text.replace(" ", "+")) else "")
        raise AbvocError(f"'{name}' must be an RFC 3339 time with its offset, e.g. {EXAMPLE} "
                         f"(got {shown(text, 40)}){plus}")
    try:
        return datetime.fromisoformat(text.upper()).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise AbvocError(f"'{name}' {text[:64]!r} is not a real time; send e.g. {EXAMPLE}") \
            from exc


def query_window(args: Mapping[str, str]) -> tuple[datetime | None, datetime | None]:
    """A report's `since` and `until` from a query, either left out; a 400 when one is not a
    time or `until` is not later than `since`. The API's reports and the dashboard's CSV
    download read it here alike (the download gave a reversed window's empty figures)."""
    since, until = (parse_rfc3339(args[k], k) if k in args else None for k in ("since", "until"))
    if since is not None and until is not None and until <= since:
        raise AbvocError("'until' must be later than 'since'")
    return since, until


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...


def as_utc(moment: datetime | None) -> datetime | None:
    """A stored time in UTC: SQLite hands times back naive (they are UTC), and a driver may
    hand them back in its session's zone (a PostgreSQL whose TimeZone is not UTC, had the
    connection not pinned it), where UTC wall-clock figures and hour arithmetic are meant."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_iso(moment: datetime | None) -> str | None:
    """ISO 8601 with the UTC offset, '+00:00', however the store handed the time back."""
    return None if moment is None else as_utc(moment).isoformat()
