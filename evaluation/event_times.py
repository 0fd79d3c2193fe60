"""The times a bus event carries, checked and made UTC before the worker stores anything of it.

The API writes every event with UTC times it made or checked itself, but anyone who can write
to the topics can write an event by hand, and its schema only says "date-time". A time the
store cannot hold in UTC (``0001-01-01T00:00:00+05:00`` is in year 0) was kept by PostgreSQL
before year 1 and broke every later read of it (results, the next batch's joins); SQLite
dropped a non-UTC offset and kept the wall-clock time. So the worker parks such an event with
its reason (its check runs before the batch's transaction), and stores every time in UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from core import events
from core.errors import AbvocError
from core.outcome_metrics import FUTURE_SLACK, check_observed_at
from core.store.db import utcnow
from core.stream import Check
from core.times import parse_rfc3339

CLOCK_SKEW = timedelta(minutes=15)
"""How far the worker's clock may lag the API's: an outcome the API accepted as at most
FUTURE_SLACK ahead of its clock is not parked by a worker whose clock is a little behind."""


def event_time(event: dict[str, Any], field: str) -> datetime:
    """An event's time `field` as an aware UTC datetime; AbvocError when it is none."""
    return parse_rfc3339(event[field], field)


def check_times(event: dict[str, Any]) -> None:
    """Refuse an event whose times the store cannot hold in UTC, one dated more than
    FUTURE_SLACK ahead of the worker's clock (give or take CLOCK_SKEW: no API process makes an
    event so far ahead of its own, and a unit first seen in year 9999 broke the sample-ratio
    check's next hour), or an outcome whose `observed_at` the API would refuse
    (:func:`core.outcome_metrics.check_observed_at`)."""
    try:
        if event_time(event, "occurred_at") > utcnow() + CLOCK_SKEW + FUTURE_SLACK:
            raise AbvocError("'occurred_at' lies in the future, past this worker's clock: an API "
                             "process's clock is wrong, or the event was written by hand")
        if event["event_type"] == events.OUTCOME_RECORDED:
            check_observed_at(event["observed_at"], utcnow() + CLOCK_SKEW)
    except AbvocError as exc:
        raise AbvocError(f"{event['event_type']} {event['event_id']!r}: {exc.message}") \
            from None


def with_times(check: Check) -> Check:
    """`check`, then :func:`check_times`."""

    def both(event: dict[str, Any]) -> None:
        check(event)
        check_times(event)

    return both
