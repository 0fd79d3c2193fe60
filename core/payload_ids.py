"""The ids a stored event payload names, read without trusting it to be JSON.

Apart from :mod:`core.parking` (which counts parked events in Prometheus) so that retention can
read them too: the CLI imports retention at start, and `abvoc up` must set its metrics folder
before anything imports prometheus_client, or its own counters (a part's restarts) never reach
`/metrics`.
"""

from __future__ import annotations

import json


def payload_id(payload: bytes, field: str) -> str | None:
    """The id (`event_id`, `prediction_id`) a payload names in `field`, if it is a JSON object
    with a string there of a stored id's length; None otherwise (not JSON, or cut short)."""
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    found = value.get(field) if isinstance(value, dict) else None
    return found if isinstance(found, str) and 0 < len(found) <= 64 else None
