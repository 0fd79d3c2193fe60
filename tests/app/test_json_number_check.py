"""`parse_json` checks a common body's numbers with a quick walk and leaves `_walk` (which says
where a problem is) to bodies that hold a NUL or a number out of range: the quick walk lets
through exactly what `_walk` lets through."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import inputs
from app.inputs import InputRefused, parse_json

SCALARS = st.one_of(
    st.none(), st.booleans(), st.text(max_size=6),
    st.integers(min_value=-2**63, max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 1e300, "a\x00b", 9.007199254740993e15]),
)
BODIES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=4), inner, max_size=4)),
    max_leaves=20)


def _verdict(text: str, bound: float | None) -> object:
    try:
        return parse_json(text, bound)
    except InputRefused as exc:
        return exc.message


@settings(max_examples=500, deadline=None)
@given(body=BODIES, bound=st.sampled_from([None, 2.0**53, 1.7976931348623157e308, 100.0]))
def test_the_quick_check_refuses_what_the_full_walk_refuses(body: object,
                                                            bound: float | None) -> None:
    text = json.dumps(body)
    quick = _verdict(text, bound)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inputs, "_numbers_within", lambda _value, _bound: -1)
        assert quick == _verdict(text, bound)


def test_a_body_with_numbers_in_range_skips_the_full_walk(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    walked = []
    monkeypatch.setattr(inputs, "_walk", lambda *a: walked.append(a))
    body = ('{"inputs":[{"name":"features","datatype":"FP32","shape":[1,4],'
            '"data":[5.1,3.5,1.4,0.2]}],"parameters":{"unit_id":"user-1"}}')
    assert parse_json(body, 1e308)["inputs"][0]["data"] == [5.1, 3.5, 1.4, 0.2]
    assert walked == []
    parse_json('{"comment": "a\\u0000b"}', 1e308)  # a NUL: the full walk says where
    parse_json('{"weights": [1, 2, 1e300]}')  # past 2^53
    assert len(walked) == 2
