"""/v2 as clients of other servers speak it: the server metadata route, the request parameters
and body fields their clients add, labels in JSON as text, outputs asked by a name the candidate
does not answer; and values a cast would change refused at the route (400, nothing stored), a
shape numpy cannot hold included (it was a 500)."""

from __future__ import annotations

import base64

from flask import Flask
from sqlalchemy import func, select

from core.store.models import OutboxEvent, ServedPrediction
from tests.support.bundles import EXAMPLE
from tests.support.keys import bearer
from tests.support.v2 import CLASSES, flowers, upload

URL = "/v2/models/default/infer"
ROW = flowers(1)[0]


def _body(**tensor: object) -> dict:
    features = {"name": "features", "datatype": "FP32", "shape": [1, 4], "data": ROW.tolist()}
    return {"inputs": [{**features, **tensor}], "parameters": {"unit_id": "u"}}


def _stored(app: Flask) -> tuple[int, int]:
    with app.extensions["abvoc"].db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) or 0
                     for t in (OutboxEvent, ServedPrediction))


def test_values_a_cast_would_change_are_400s_that_store_nothing(v2app: Flask) -> None:
    client = v2app.test_client()
    admin, predictor = bearer(v2app, "admin"), bearer(v2app, "predict")
    upload(client, admin, EXAMPLE)
    cases = [
        (_body(shape=[1] * 65 + [4]), "its shape has 66 dimensions; at most 32"),
        (_body(datatype="BYTES", shape=[1] * 65 + [4], data=["a"] * 4), "66 dimensions"),
        (_body(data=["nan", 1, 1, 1]), "FP32 data must be JSON numbers"),
        (_body(data=[None, 1, 1, 1]), "FP32 data must be JSON numbers"),
        (_body(datatype="FP16", data=[70000, 1, 1, 1]), "within FP16's range"),
        (_body(datatype="FP64", data=[1e300, 1, 1, 1]), "within FP32's range"),
        (_body(datatype="INT32", data=[5.9, 1, 1, 1]), "INT32 data must be integers"),
        (_body(datatype="BOOL", data=["false"] * 4), "BOOL data must be true or false"),
        (_body(data=[[5.1, 3.5, 1.4], [0.2]]), "nested data is ragged"),
    ]
    for body, words in cases:
        answer = client.post(URL, headers=predictor, json=body)
        assert answer.status_code == 400, (body, answer.get_json())
        assert words in answer.get_json()["error"], answer.get_json()
    assert _stored(v2app) == (0, 0)
    # Values that cast exactly are served: integers, FP64 within FP32's range, 1e20.
    for body in (_body(datatype="INT64", data=[5, 3, 1, 0]),
                 _body(datatype="FP64", data=[1e20, 3.5, 1.4, 0.2])):
        answer = client.post(URL, headers=predictor, json=body)
        assert answer.status_code == 200, answer.get_json()


def test_what_other_servers_clients_send_is_taken(v2app: Flask) -> None:
    client = v2app.test_client()
    admin, predictor = bearer(v2app, "admin"), bearer(v2app, "predict")
    upload(client, admin, EXAMPLE)
    server = client.get("/v2")
    assert server.status_code == 200
    assert server.get_json()["name"] == "abvoc"
    assert server.get_json()["extensions"] == ["binary_tensor_data"]
    # MLServer's request codec marks the request; Triton's client adds timeout and priority;
    # KServe's names the model in the body.
    mlserver = _body(parameters={"content_type": "np"})
    mlserver["parameters"] = {"unit_id": "u", "content_type": "np", "timeout": 5, "priority": 1}
    answer = client.post(URL, headers=predictor, json={**mlserver, "model_name": "default",
                                                       "model_version": ""})
    assert answer.status_code == 200, answer.get_json()
    # A label in JSON is the text it is (a Triton client reads data as it comes), base64
    # where asked so.
    output = answer.get_json()["outputs"][0]
    assert output["parameters"] == {"content_type": "str"} and output["data"][0] in CLASSES
    asked = client.post(URL, headers=predictor, json={
        **_body(), "outputs": [{"name": "output", "parameters": {"content_type": "base64"}}]})
    assert base64.b64decode(asked.get_json()["outputs"][0]["data"][0]).decode() in CLASSES
    # No outputs named, or an empty list: all of them.
    every = client.post(URL, headers=predictor, json={**_body(), "outputs": []}).get_json()
    # A route of Triton's own (its repository index) is a 404 that lists the protocol's.
    unknown = client.post("/v2/repository/index", headers=predictor, json={})
    assert unknown.status_code == 404
    assert unknown.get_json()["error"].startswith("no such Open Inference Protocol route; "
                                                  "abvoc serves GET /v2,")
    assert [t["name"] for t in every["outputs"]] == [
        t["name"] for t in answer.get_json()["outputs"]]


def test_an_output_the_candidate_does_not_answer_is_a_400_naming_those_it_does(
        v2app: Flask) -> None:
    client = v2app.test_client()
    admin, predictor = bearer(v2app, "admin"), bearer(v2app, "predict")
    upload(client, admin, EXAMPLE)
    answer = client.post(URL, headers=predictor, json={
        **_body(), "outputs": [{"name": "output"}, {"name": "nosuch"}]})
    assert answer.status_code == 400
    said = answer.get_json()["error"]
    assert "output(s) 'nosuch' are not among the tensors" in said
    assert "answers ('output', 'label', 'confidence', 'probabilities')" in said
    assert "ask for 'output', which every candidate answers" in said
    recorded = answer.get_json()["details"]  # recorded: its receipt, to correct it still
    fixed = client.post("/v1/corrections", headers=bearer(v2app, "correct"), json={
        **recorded, "corrected_output": "setosa"})
    assert fixed.status_code == 202, fixed.get_json()
