"""The request headers abvoc reads, and the rule their values keep: non-empty ASCII text.

HTTP header values are bytes; granian hands one that is not ASCII to the app as '' (werkzeug's
server as its bytes read as latin-1), so `X-Abvoc-Force-Arm: trésor` was read as no header at
all and the forced QA request was routed and counted in the experiment, and `X-Abvoc-Unit-Id:
élève` got a 400 that did not say what to fix. An empty value is refused too, whatever sent it:
it cannot be told from one the server emptied. Each refusal says where such a value goes instead.

A header sent twice reaches the app as its values joined by a comma (`Idempotency-Key: aa1`
and `Idempotency-Key: bb2` as `aa1,bb2`): a retry with either key alone was then a new outcome,
and two unit headers one unit named `alice,bob`. As a query parameter or form field given
twice, it is refused; so no value abvoc reads holds a comma (an arm name sends one
percent-encoded, a unit id in the body).
"""

from __future__ import annotations

FORCE_HEADER = "X-Abvoc-Force-Arm"
UNIT_HEADER = "X-Abvoc-Unit-Id"
READ_HEADERS = ("Authorization", "X-API-Key", "Idempotency-Key", FORCE_HEADER, UNIT_HEADER,
                "Inference-Header-Content-Length")
# Where a value that is not ASCII goes instead, or what the value is.
_INSTEAD = {
    UNIT_HEADER: "; a unit id that is not ASCII or holds a comma goes in the body, as "
                 "'parameters.unit_id'",
    FORCE_HEADER: "; an arm name that is not ASCII or holds a comma goes percent-encoded as "
                  "UTF-8 (the arm 'trésor' as tr%C3%A9sor, 'a,b' as a%2Cb)",
    "Idempotency-Key": "; an Idempotency-Key is 1 to 128 ASCII characters, no comma",
}


def header_problem(name: str, value: str) -> str | None:
    """Why the value of header `name` (one of READ_HEADERS) cannot be read, or None."""
    if value and value.isascii() and "," not in value:
        return None
    if value and value.isascii():
        return (f"header '{name}' holds a comma: a header sent twice reaches abvoc as its "
                "values joined by commas, which cannot be told from one value, so send it "
                f"once, its value without a comma{_INSTEAD.get(name, '')}")
    what = "is empty" if not value else "is not ASCII"
    return (f"header '{name}' {what}: header values must be non-empty ASCII text (one that is "
            f"not ASCII reaches abvoc empty or garbled){_INSTEAD.get(name, '')}")
