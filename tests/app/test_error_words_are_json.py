"""A 400 echoes what the client sent in the client's words, JSON's: a tensor's datatype or
shape left out read "datatype None" and "got None", an output name "['nope']", and a label that
was null "got NoneType null" (the README: error bodies never carry Python object
representations). And a V2 request's 'parameters' is refused as a tensor's is when it is no
object."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.support.bundles import EXAMPLE
from tests.support.keys import bearer
from tests.support.v2 import upload

URL = "/v2/models/iris-onnx/infer"
ROW = [5.1, 3.5, 1.4, 0.2]


def _tensor(**changes: object) -> dict:
    tensor = {"name": "features", "datatype": "FP32", "shape": [1, 4], "data": ROW}
    tensor.update(changes)
    return {key: value for key, value in tensor.items() if value is not ...}


@pytest.mark.parametrize(("tensor", "words"), [
    (_tensor(datatype=...), "tensor 'features': datatype null is not one abvoc takes"),
    (_tensor(datatype=True), "tensor 'features': datatype true is not one abvoc takes"),
    (_tensor(shape=...), "tensor 'features': shape must be a list of sizes, got null"),
    (_tensor(shape={"rows": 1}), 'shape must be a list of sizes, got {"rows": 1}'),
])
def test_a_tensor_refusal_shows_what_was_sent_as_json(v2app: Flask, tensor: dict,
                                                      words: str) -> None:
    client = v2app.test_client()
    upload(client, bearer(v2app, "admin"), EXAMPLE)
    answer = client.post(URL, headers=bearer(v2app, "predict"),
                         json={"inputs": [tensor], "parameters": {"unit_id": "u"}})
    assert answer.status_code == 400
    assert words in answer.get_json()["error"]
    assert "None" not in answer.get_json()["error"]


def test_an_output_the_candidate_lacks_is_named_as_sent(v2app: Flask) -> None:
    client = v2app.test_client()
    upload(client, bearer(v2app, "admin"), EXAMPLE)
    answer = client.post(URL, headers=bearer(v2app, "predict"), json={
        "inputs": [_tensor()], "parameters": {"unit_id": "u"}, "outputs": [{"name": "nope"}]})
    assert answer.status_code == 400
    said = answer.get_json()["error"]
    assert said.startswith("output(s) 'nope' are not among the tensors the candidate serving "
                           "this unit answers ('output', 'label', 'confidence', "
                           "'probabilities')"), said


def test_a_null_label_is_said_to_be_null(v2app: Flask) -> None:
    client = v2app.test_client()
    upload(client, bearer(v2app, "admin"), EXAMPLE)
    served = client.post(URL, headers=bearer(v2app, "predict"),
                         json={"inputs": [_tensor()], "parameters": {"unit_id": "u"}})
    ids = served.get_json()["parameters"]
    for value, shown in ((None, "got null"), (5, "got number 5"), (["a"], 'got array ["a"]')):
        answer = client.post("/v1/corrections", headers=bearer(v2app, "correct"), json={
            "prediction_id": ids["prediction_id"], "receipt": ids["receipt"],
            "corrected_output": value})
        assert answer.status_code == 400
        assert answer.get_json()["error"].endswith(shown), answer.get_json()


@pytest.mark.parametrize("parameters", [[], False, 0, ""])
def test_request_parameters_that_are_no_object_are_refused(v2app: Flask,
                                                           parameters: object) -> None:
    """As a tensor's 'parameters' of [] is: the request's were read with `or {}`, so [], false,
    0 and "" passed as no parameters (null still does: a client's optional field)."""
    client = v2app.test_client()
    upload(client, bearer(v2app, "admin"), EXAMPLE)
    answer = client.post(URL, headers={**bearer(v2app, "predict"), "X-Abvoc-Unit-Id": "u"},
                         json={"inputs": [_tensor()], "parameters": parameters})
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["error"] == "'parameters' must be an object"


def test_unknown_query_parameters_are_named_as_typed(v2app: Flask) -> None:
    """Not as a Python list ("['x']", and a backslash doubled, a quote escaped)."""
    answer = v2app.test_client().get("/v2/models/iris-onnx/ready?x=1&it's\\=2",
                                     headers=bearer(v2app, "predict"))
    assert answer.status_code == 400
    assert answer.get_json()["error"] == ("unknown query parameter(s) 'it's\\', 'x'; this "
                                          "route takes none")
