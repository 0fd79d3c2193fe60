"""A share's difference lies in [-1, 1] and its relative change is at least -100 %: intervals
that reach past that (Welch's t on a few per-unit shares, a normal approximation at tiny n)
are cut to it. The true value is always inside the bounds, so the cut interval covers it
whenever the whole one did: the coverage stays, and an interval that reads -131 % points
is not shown."""

from __future__ import annotations

import math
from typing import Any

DIFFERENCES = ("ci", "credible_ci", "sequential_ci")


def bound_share_intervals(record: dict[str, Any]) -> None:
    """In place, for one comparison record of a share metric (a rate, exact match)."""
    for name in DIFFERENCES:
        for key, limit, keep in ((f"{name}_low", -1.0, max), (f"{name}_high", 1.0, min)):
            value = record.get(key)
            if isinstance(value, float) and math.isfinite(value):
                record[key] = keep(value, limit)
        relative = f"{name.removesuffix('ci')}relative_ci_low"
        value = record.get(relative)
        if isinstance(value, float) and math.isfinite(value):
            record[relative] = max(value, -1.0)
