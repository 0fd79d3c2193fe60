"""Outcome metric definitions and outcome values: the checks the API, the command line and the
worker share, so a definition or a value means the same thing wherever it is read.

A metric is defined per experiment. Its kind says what a unit's value is: ``proportion`` (0 or 1
per unit), ``mean`` (any number per unit) or ``ratio`` (the sum of a numerator metric over the sum
of a denominator metric, both taken per unit, tested by the delta method). ``combine`` says how
one unit's outcomes of the metric become its value: the ``first`` one (by the time it happened),
their ``sum``, their ``mean`` or their ``max``. A proportion combines by first or max (max reads
"any"), so every unit's value stays 0 or 1. ``missing`` says what a unit exposed to an arm that
sent no outcome of the metric counts as: ``skip`` (the default) leaves it out, so the metric is
the mean over the units that reported it; ``zero`` counts it 0 (for a ratio, 0 over 0: in both
sums), so every exposed unit is in the sample, as a team that sends only positive events
(``purchase`` = 1 when one happens, nothing otherwise) needs.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

from core.errors import AbvocError, refuse_unknown
from core.text import quoted_names
from core.times import parse_rfc3339

PROPORTION, MEAN, RATIO = "proportion", "mean", "ratio"
KINDS = (PROPORTION, MEAN, RATIO)
COMBINES = ("first", "sum", "mean", "max")
DIRECTIONS = ("higher", "lower")
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,49}$"
SKIP_MISSING, ZERO_MISSING = "skip", "zero"
MISSING = (SKIP_MISSING, ZERO_MISSING)
FIELDS = {"name", "kind", "direction", "combine", "guardrail", "primary", "numerator",
          "denominator", "missing"}
DEFAULT_COMBINE = {PROPORTION: "first", MEAN: "mean", RATIO: "sum"}
PROPORTION_COMBINES = ("first", "max")
# Values past this size lose their units digit as floats; nothing real is that large.
MAX_ABS_VALUE = 2.0**53
# A clock a little ahead is forgiven; an outcome from the future is a bug in the sender.
FUTURE_SLACK = timedelta(hours=1)


def _name(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not re.fullmatch(NAME_PATTERN, value):
        raise AbvocError(f"'{key}' must be a metric name: a lower-case letter, then up to 49 "
                         "lower-case letters, digits or underscores")
    return value


def _choice(body: dict[str, Any], key: str, allowed: tuple[str, ...], default: str | None) -> str:
    value = body.get(key, default)
    if value is None and default is not None:
        value = default
    if value is None:
        raise AbvocError(f"'{key}' is required: one of {quoted_names(allowed)}")
    if value not in allowed:
        raise AbvocError(f"'{key}' must be one of {quoted_names(allowed)}")
    return str(value)


def check_definition(body: Any) -> dict[str, Any]:
    """A metric definition with its defaults filled in, or AbvocError (400) saying what to fix."""
    if not isinstance(body, dict):
        raise AbvocError("send the metric as a JSON object with name, kind and direction")
    refuse_unknown(body, FIELDS)
    name = _name(body, "name")
    kind = _choice(body, "kind", KINDS, None)
    direction = _choice(body, "direction", DIRECTIONS, None)
    combine = _choice(body, "combine", COMBINES, DEFAULT_COMBINE[kind])
    if kind == PROPORTION and combine not in PROPORTION_COMBINES:
        raise AbvocError(f"a proportion metric combines a unit's outcomes by "
                         f"{' or '.join(PROPORTION_COMBINES)} so that each unit counts 0 or 1; "
                         f"for a per-unit rate define a 'mean' metric with combine '{combine}'")
    if kind == RATIO and combine != "sum":
        raise AbvocError("a ratio metric divides the per-unit sums of its numerator and "
                         "denominator; its combine is 'sum'")
    numerator = denominator = None
    if kind == RATIO:
        missing = [k for k in ("numerator", "denominator") if body.get(k) is None]
        if missing:  # before their spelling: a field left out is not a misspelt name
            raise AbvocError(f"a ratio metric needs both 'numerator' and 'denominator' ("
                             f"{' and '.join(repr(k) for k in missing)} not given): two other "
                             "metrics of the experiment, summed per unit above and below")
        numerator, denominator = _name(body, "numerator"), _name(body, "denominator")
        if len({name, numerator, denominator}) < 3:
            raise AbvocError("a ratio's numerator and denominator must be two other metrics")
    elif body.get("numerator") is not None or body.get("denominator") is not None:
        raise AbvocError("'numerator' and 'denominator' belong to ratio metrics only")
    guardrail = body.get("guardrail")
    if guardrail is not None and (isinstance(guardrail, bool)
                                  or not isinstance(guardrail, int | float)
                                  or not math.isfinite(guardrail)
                                  or abs(guardrail) > MAX_ABS_VALUE):
        raise AbvocError("'guardrail' must be a number from -2^53 to 2^53 (the limit an arm's "
                         "mean must not cross in the bad direction) or null")
    if kind == PROPORTION and guardrail is not None and not 0 <= guardrail <= 1:
        raise AbvocError("a proportion metric's 'guardrail' is a share from 0 to 1")
    primary = body.get("primary", False)
    if not isinstance(primary, bool):
        raise AbvocError("'primary' must be true or false")
    absent = _choice(body, "missing", MISSING, SKIP_MISSING)
    return {"name": name, "kind": kind, "direction": direction, "combine": combine,
            "numerator": numerator, "denominator": denominator,
            "guardrail": None if guardrail is None else float(guardrail), "primary": primary,
            "missing": absent}


def check_value(name: str, kind: str, value: Any) -> float:
    """An outcome's value as a float, or AbvocError (400) when it is of the wrong kind."""
    if kind == RATIO:
        raise AbvocError(f"metric {name!r} is a ratio: send outcomes of its numerator and "
                         "denominator metrics instead")
    if kind == PROPORTION:
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if isinstance(value, int | float) and value in (0, 1):
            return float(value)
        raise AbvocError(f"metric {name!r} is a proportion: 'value' must be 0, 1, true or false")
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or abs(value) > MAX_ABS_VALUE:
        raise AbvocError(f"metric {name!r} takes a finite number as 'value' (at most 2^53 in "
                         "size)")
    return float(value)


def check_observed_at(text: str, now: datetime) -> datetime:
    """When an outcome happened, as an aware UTC time, or AbvocError: RFC 3339 with its offset,
    a time UTC can hold, at most FUTURE_SLACK past `now`. The API checks a request's time with
    it and the worker an event's from the bus, so the store never holds a time the API would
    refuse (one before year 1 in UTC broke PostgreSQL's reads of every waiting outcome)."""
    when = parse_rfc3339(text, "observed_at")
    if when > now + FUTURE_SLACK:
        raise AbvocError("'observed_at' lies in the future; send when the outcome happened")
    return when


def check_after_creation(experiment_id: int, created: datetime | None, when: datetime) -> None:
    """Refuse an outcome dated before its experiment existed (`created`, aware UTC; None: not
    known): no unit or prediction of it can have had an outcome then, and such a date is a
    sender's bug (or made up)."""
    if created is not None and when < created:
        raise AbvocError(f"'observed_at' {when.isoformat()} is before experiment "
                         f"{experiment_id} was created ({created.isoformat()}); send when the "
                         "outcome happened")
