"""Which answers belong to one request: the served answer and its shadows' answers share the
experiment, the unit and the input, but a unit may send the same input again, and nothing
stored names the request (the event's request id is the caller's, optional and not kept).

A shadow answers after its request is served, so a request's shadows are those dated from
its served answer up to the unit's next served answer to that input, and a shadow's request is
the latest served answer dated at or before it. The relabeling rules (shadow disagreements)
and the item view (what an annotator is shown) both pick by this rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from core.times import as_utc


class Answer(Protocol):
    prediction_id: str
    candidate: str
    shadow: bool
    created_at: Any


def own_request(p: Answer, twins: Iterable[Answer]) -> dict[str, Answer]:
    """Of `p`'s twins (same experiment, unit and input), the answers on the other side of
    `p`'s own request, by candidate: its shadows' answers for a served `p` (the first of each
    shadow candidate), the served answer for a shadow's."""
    at = as_utc(p.created_at)
    dated = sorted(((as_utc(t.created_at), t) for t in twins
                    if t.prediction_id != p.prediction_id), key=lambda pair: pair[0])
    served = [(when, t) for when, t in dated if not t.shadow]
    if p.shadow:
        before = [t for when, t in served if when <= at]
        return {before[-1].candidate: before[-1]} if before else {}
    until = next((when for when, _ in served if when > at), None)
    own: dict[str, Answer] = {}
    for when, t in dated:
        if t.shadow and when >= at and (until is None or when < until):
            own.setdefault(t.candidate, t)
    return own
