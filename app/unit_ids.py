"""A prediction request's unit id, from the two places a client may send it: the body (`unit_id`,
V2's `parameters.unit_id`) and the X-Abvoc-Unit-Id header.

The body's id was read and the header's dropped unsaid (on /v1/predict and /v1/pages the header
was never read), so a client whose two ids disagreed had its requests assigned, sticky and
counted, as a unit it did not mean; two different ids are refused, as two API keys are. A
blank id ('' or only spaces) names no user or session, yet was served as a unit ('' as none):
every blank request one unit, stuck to one arm. It is refused, saying what to send instead.
"""

from __future__ import annotations

from app.read_headers import UNIT_HEADER
from core.errors import AbvocError
from core.text import sent

UNIT_ID_CHARS = 200
_INSTEAD = ("send the id of the user or session the request is for, or leave it out on a scope "
            "whose experiment has unit 'request' (each request its own unit)")


def request_unit(given: object, where: str, header: str | None) -> str | None:
    """The unit id of a request that gives `given` in its body at `where` (None: left out)
    and `header` as UNIT_HEADER (None: not sent); None when neither names one. AbvocError
    (400) for an id that is no string of 1 to UNIT_ID_CHARS characters, a blank one, or two
    different ids (the same one in both places is that unit)."""
    body = None if given is None else _checked(given, where)
    sent_header = None if header is None else _checked(header, f"the {UNIT_HEADER} header")
    if body is not None and sent_header is not None and body != sent_header:
        raise AbvocError(f"two different unit ids: {sent(body)} in {where} and "
                         f"{sent(sent_header)} in the {UNIT_HEADER} header; send the unit's "
                         "id in one of them (or the same id in both)")
    return body if body is not None else sent_header


def _checked(value: object, where: str) -> str:
    if not isinstance(value, str) or len(value) > UNIT_ID_CHARS:
        raise AbvocError(f"the unit id in {where} must be a string of 1 to {UNIT_ID_CHARS} "
                         "characters")
    if not value.strip():
        raise AbvocError(f"the unit id in {where} is blank ({sent(value)}): {_INSTEAD}")
    return value
