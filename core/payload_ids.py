"""The ids a stored event payload names, read without trusting it to be JSON.

Apart from :mod:`core.parking` (which counts parked events in Prometheus) so that retention can
read them too: the CLI imports retention at start, and `abvoc up` must set its metrics folder
before anything imports prometheus_client, or its own counters (a part's restarts) never reach
`/metrics`.
"""

from __future__ import annotations

import json

from core.text import text_problem


def payload_id(payload: bytes, field: str) -> str | None:
    """The id (`event_id`, `prediction_id`) a payload names in `field`, if it is a JSON object
    with a string there of a stored id's length that a store can hold; None otherwise (not
    JSON, cut short, or an id with a NUL or a lone surrogate, which the standard library's
    parser lets through: stored, it failed the parking of its event, round after round)."""
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    found = value.get(field) if isinstance(value, dict) else None
    if not isinstance(found, str) or not 0 < len(found) <= 64 or text_problem(found):
        return None
    return found
