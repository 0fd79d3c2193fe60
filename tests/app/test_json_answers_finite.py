"""Answers are JSON any parser takes: NaN and infinities come out as null, also where an answer
holds what orjson does not write (an integer beyond 64 bits, here) and Flask's own encoder
writes it instead (it wrote the tokens NaN and Infinity)."""

from __future__ import annotations

import json
import math

import numpy as np
from flask import Flask

from app.inputs import BoundedJSONProvider


def _strict(text: str) -> object:
    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in {text}")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_null_on_either_encoder() -> None:
    provider = BoundedJSONProvider(Flask(__name__))
    figures = {"mae": math.nan, "interval": [0.5, math.inf], "p": np.float64("-inf"),
               "nested": {"t": (math.nan, 1.0)}}
    for extra in ({}, {"count": 2**70}):  # the second goes to Flask's encoder
        answer = _strict(provider.dumps({**figures, **extra}))
        assert answer["mae"] is None and answer["interval"] == [0.5, None]
        assert answer["p"] is None and answer["nested"] == {"t": [None, 1.0]}
    assert _strict(provider.dumps({"count": 2**70}))["count"] == 2**70
