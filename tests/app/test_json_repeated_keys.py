"""A JSON object that names a field twice is refused, whatever the route: a parser keeps one of
the two values, and which one the sender meant cannot be told."""

from __future__ import annotations

import base64
import json

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.inputs import InputRefused, parse_json
from serving.images import encode_png
from tests.app.test_input_limits import post_raw, stored
from tests.app.test_predict_flow import _image, predict


@pytest.mark.parametrize("text", [
    '{"unit_id": "a", "unit_id": "b"}',
    '{"inputs": [{"name": "x", "data": [1, 2], "name": "y"}]}',
    '[1, {"outer": {"k": 1, "k": 1}}]',  # the same value twice is still two fields
    '{"note": "a:b:c", "k": 1, "k": 2}',  # colons in strings take the slower look
    '{"comment": "\\ud800", "comment": "x"}',  # a lone surrogate: the standard library's parse
])
def test_a_field_given_twice_is_refused_naming_it(text: str) -> None:
    with pytest.raises(InputRefused, match=r"gives the field '(unit_id|name|k|comment)' more"):
        parse_json(text)


@pytest.mark.parametrize("text", [
    '{"note": "10:30 a:b", "url": "http://h:8/x", "n": {"a": 1, "b": [1, {"c": ":"}]}}',
    '{"a": {"a": {"a": 1}}, "b": [{"a": 1}, {"a": 2}]}',  # one name in different objects
    '{"": 1, " ": 2}',
])
def test_fields_of_one_name_in_different_objects_or_colons_in_strings_pass(text: str) -> None:
    assert parse_json(text) == json.loads(text)


def test_predict_with_unit_id_given_twice_is_a_400_and_stores_nothing(
        app: Flask, client: FlaskClient, predictor: dict) -> None:
    predict(client, predictor)  # the scope's candidate is loaded
    before = stored(app)
    image = base64.b64encode(encode_png(_image().image)).decode()
    body = json.dumps({"image_base64": image})[:-1] + ', "unit_id": "u1", "unit_id": "u2"}'
    refused = post_raw(client, "/v1/predict", body, predictor)
    assert refused.status_code == 400
    assert "'unit_id' more than once" in refused.get_json()["error"]
    assert stored(app) == before
