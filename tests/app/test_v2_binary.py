"""/v2 with the binary tensor data extension (as Triton's clients send it): binary inputs give the
same prediction and the same kept input as JSON ones, outputs come back as binary data when asked,
any Content-Type is read as V2, inference bodies may be larger than other routes' bodies, and
every malformed binary body is a 400 that stores nothing."""

from __future__ import annotations

import base64
import json
import struct

import numpy as np
from flask import Flask
from sqlalchemy import func, select

from core.store.models import OutboxEvent, PredictionInput, ServedPrediction
from serving.bundles.binary import HEADER
from tests.support.bundles import EXAMPLE
from tests.support.keys import bearer
from tests.support.v2 import flowers, infer_body, output_of, upload

URL = "/v2/models/default/infer"
ROW = flowers(1, seed=4)


def binary_body(head: dict, *raws: bytes) -> tuple[bytes, dict[str, str]]:
    text = json.dumps(head).encode()
    return text + b"".join(raws), {HEADER: str(len(text))}


def features(**parameters: object) -> dict:
    return {"name": "features", "datatype": "FP32", "shape": [1, 4],
            "parameters": {"binary_data_size": 16, **parameters}}


def split_answer(response) -> tuple[dict, bytes]:  # noqa: ANN001 - a test response
    length = int(response.headers[HEADER])
    return json.loads(response.data[:length]), response.data[length:]


def _stored(app: Flask) -> tuple[int, int]:
    with app.extensions["abvoc"].db.session() as s:
        return (s.scalar(select(func.count()).select_from(OutboxEvent)),
                s.scalar(select(func.count()).select_from(ServedPrediction)))


def test_binary_inputs_and_outputs(v2app: Flask) -> None:
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload(client, admin, EXAMPLE)
    as_json = client.post(URL, headers=admin, json=infer_body(ROW, "u1"))
    assert as_json.status_code == 200, as_json.get_json()
    probabilities = next(t for t in as_json.get_json()["outputs"]
                         if t["name"] == "probabilities")

    # Binary in, JSON out, no Content-Type at all (Triton's client sends none).
    data, headers = binary_body({"inputs": [features()], "parameters": {"unit_id": "u1"}},
                                ROW.astype("<f4").tobytes())
    plain = client.post(URL, headers={**admin, **headers}, data=data)
    assert plain.status_code == 200, plain.data[:300]
    assert plain.mimetype == "application/json" and HEADER not in plain.headers
    assert output_of(plain.get_json()) == output_of(as_json.get_json())

    # Binary out for every output (`binary_data_output`, as Triton's client asks when it names
    # no outputs): the JSON header gives each size, the bytes follow in the header's order.
    data, headers = binary_body({"inputs": [features()], "parameters": {
        "unit_id": "u1", "binary_data_output": True}}, ROW.astype("<f4").tobytes())
    answer = client.post(URL, headers={**admin, **headers}, data=data,
                         content_type="application/octet-stream")
    assert answer.status_code == 200, answer.data[:300]
    assert answer.mimetype == "application/octet-stream"
    head, raw = split_answer(answer)
    names = [t["name"] for t in head["outputs"]]
    assert names == [t["name"] for t in as_json.get_json()["outputs"]]
    assert names[0] == "output" and names[-1] == "probabilities"
    assert all("data" not in t for t in head["outputs"])
    sizes = [t["parameters"]["binary_data_size"] for t in head["outputs"]]
    assert sum(sizes) == len(raw)
    label = output_of(as_json.get_json()).encode()
    assert raw[:sizes[0]] == struct.pack("<I", len(label)) + label
    got = np.frombuffer(raw[sum(sizes[:-1]):], dtype="<f4")
    np.testing.assert_allclose(got, probabilities["data"], rtol=1e-6)
    assert head["parameters"]["candidate"] == "iris-onnx" and "receipt" in head["parameters"]

    # Per output: binary for one, JSON for another, the rest left out.
    data, headers = binary_body({"inputs": [features()], "parameters": {"unit_id": "u1"},
                                 "outputs": [{"name": "probabilities",
                                              "parameters": {"binary_data": True}},
                                             {"name": "output",
                                              "parameters": {"binary_data": False}}]},
                                ROW.astype("<f4").tobytes())
    mixed = client.post(URL, headers={**admin, **headers}, data=data)
    head, raw = split_answer(mixed)
    assert [t["name"] for t in head["outputs"]] == ["output", "probabilities"]
    assert output_of(head) == output_of(as_json.get_json())
    assert head["outputs"][1]["parameters"] == {"binary_data_size": 12} and len(raw) == 12

    # The kept input of a binary request is the same V2 JSON a JSON request keeps.
    with v2app.extensions["abvoc"].db.session() as s:
        kept = s.execute(select(PredictionInput.input_hash, PredictionInput.data)).all()
    assert len(kept) == 4 and len(set(kept)) == 1

    # BYTES in JSON as plain text where an output asks for it (MLServer's content type "str").
    text = client.post(URL, headers=admin, json={
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4],
                    "data": ROW.tolist()}], "parameters": {"unit_id": "u1"},
        "outputs": [{"name": "output", "parameters": {"content_type": "str"}},
                    {"name": "label", "parameters": {"content_type": "base64"}}]})
    assert text.status_code == 200, text.get_json()
    label, as_base64 = text.get_json()["outputs"]
    assert label["parameters"] == {"content_type": "str"}
    assert label["data"] == [output_of(as_json.get_json())]
    assert as_base64["parameters"] == {"content_type": "base64"}
    assert base64.b64decode(as_base64["data"][0]).decode() == label["data"][0]


def test_malformed_binary_requests_are_400s_that_store_nothing(v2app: Flask) -> None:
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload(client, admin, EXAMPLE)
    before = _stored(v2app)
    raw = ROW.astype("<f4").tobytes()
    unit = {"unit_id": "u1"}
    cases = [
        (binary_body({"inputs": [features()], "parameters": unit}, raw[:12]),
         "binary_data_size is 16 bytes but only 12 are left"),
        (binary_body({"inputs": [features()], "parameters": unit}, raw + b"\x00"),
         "holds 1 bytes after the tensors"),
        (binary_body({"inputs": [features(binary_data_size=8)], "parameters": unit}, raw[:8]),
         "shape [1, 4] of FP32 takes 16 bytes, the binary data has 8"),
        ((json.dumps({"inputs": [features()], "parameters": unit}).encode() + raw, {}),
         "not valid UTF-8 text (byte 0xe6 at offset 144); send JSON in UTF-8; binary tensor "
         "data goes after the JSON, whose length the Inference-Header-Content-Length header "
         "gives"),
        ((json.dumps({"inputs": [features()], "parameters": unit}).encode(), {}),
         "has no Inference-Header-Content-Length header"),
        ((b"{}" + raw, {HEADER: "-3"}), "must be the length of the JSON header"),
        (binary_body({"inputs": [features()], "parameters": {**unit, "binary_data_output": 1}},
                     raw), "'parameters.binary_data_output' must be true or false"),
        (binary_body({"inputs": [features()], "parameters": unit,
                      "outputs": [{"name": "output", "parameters": {"classification": 2}}]},
                     raw), "the parameters abvoc reads are 'binary_data' (true or false) and "
         "'content_type' ('str' or 'base64', for BYTES in JSON)"),
        (binary_body({"inputs": [features()], "parameters": unit,
                      "outputs": [{"name": "output", "parameters": {"content_type": "utf8"}}]},
                     raw), "'parameters.content_type' must be 'str' (BYTES as plain UTF-8 "
         "strings) or 'base64'"),
        (binary_body({"inputs": [features()], "parameters": unit,
                      "outputs": [{"name": "output", "parameters": {"binary_data": "yes"}}]},
                     raw), "'parameters.binary_data' must be true or false"),
        # As for inputs: an unknown key or parameters that are no object were passed over.
        (binary_body({"inputs": [features()], "parameters": unit,
                      "outputs": [{"name": "output", "binary": True}]},
                     raw), "output 'output': unknown key(s) 'binary'"),
        (binary_body({"inputs": [features()], "parameters": unit,
                      "outputs": [{"name": "output", "parameters": []}]},
                     raw), "output 'output': the parameters abvoc reads are"),
        # As a duplicated input name is: which of the two ways was meant cannot be told.
        (binary_body({"inputs": [features()], "parameters": unit,
                      "outputs": [{"name": "output"},
                                  {"name": "output", "parameters": {"binary_data": True}}]},
                     raw), "output 'output' is asked for twice; name each output once"),
        ((b'{"inputs": [' + b"[" * 40 + b"]" * 40 + b"]}" + raw, {HEADER: "86"}),
         "nests 42 levels deep"),
        ((b'{"inputs": "\\ud800"}' + raw, {HEADER: "20"}), "lone UTF-16 surrogate"),
        # As in JSON: a caller's NaN or Infinity never reaches a candidate (a remote's NaN
        # scores were counted against it; a local bundle served a label picked from them).
        *((binary_body({"inputs": [features()], "parameters": unit},
                       np.array([[5.1, bad, 4.7, 1.2]], "<f4").tobytes()),
           "tensor 'features' holds a number that is not finite (NaN or Infinity)")
          for bad in (np.nan, np.inf, -np.inf)),
    ]
    for (data, headers), words in cases:
        response = client.post(URL, headers={**admin, **headers}, data=data,
                               content_type="application/octet-stream")
        assert response.status_code == 400, (words, response.data[:300])
        assert words in response.get_json()["error"], (words, response.get_json())
    # Without the header, a body that is JSON is not told about binary data.
    surrogate = client.post(URL, headers=admin, data=b'{"inputs": "\\ud800"}',
                            content_type="application/octet-stream")
    assert surrogate.status_code == 400
    assert surrogate.get_json()["error"].endswith("lone UTF-16 surrogate such as \\ud800)")
    assert _stored(v2app) == before


def test_inference_bodies_may_be_larger_than_other_bodies(v2app: Flask) -> None:
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload(client, admin, EXAMPLE)
    padded = json.dumps(infer_body(ROW, "u1")).encode()[:-1] + b" " * (6 << 20) + b"}"
    assert client.post(URL, headers=admin, data=padded,
                       content_type="application/json").status_code == 200
    elsewhere = client.post("/v1/predict", headers=admin, data=padded,
                            content_type="application/json")
    assert elsewhere.status_code == 413
    assert "the limit is 4194304 (images at most 2 MiB)" in elsewhere.get_json()["error"]
    # A route that takes no image says its limit alone.
    correction = client.post("/v1/corrections", headers=admin, data=padded,
                             content_type="application/json")
    assert correction.status_code == 413
    assert correction.get_json()["error"].endswith("the limit is 4194304"), correction.get_json()
    huge = client.post(URL, headers=admin, data=b"{" + b" " * (33 << 20) + b"}",
                       content_type="application/json")
    assert huge.status_code == 413 and "the limit is 33554432" in huge.get_json()["error"]
    bytes_input = client.post(URL, headers=admin, json={
        "inputs": [{"name": "features", "datatype": "BYTES", "shape": [1],
                    "data": [base64.b64encode(b"x").decode()]}], "parameters": {"unit_id": "u"}})
    assert bytes_input.status_code == 400  # still the bundle's signature check


def test_any_content_type_is_read_as_v2_multipart_too(v2app: Flask) -> None:
    """A multipart Content-Type was parsed as a form before the view read the body, which then
    was 0 bytes; the body is V2 whatever the Content-Type says."""
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload(client, admin, EXAMPLE)
    multipart = "multipart/form-data; boundary=zz"
    data, headers = binary_body({"inputs": [features()], "parameters": {"unit_id": "u1"}},
                                ROW.astype("<f4").tobytes())
    binary = client.post(URL, headers={**admin, **headers}, data=data, content_type=multipart)
    assert binary.status_code == 200, binary.data[:300]
    as_json = client.post(URL, headers=admin, data=json.dumps(infer_body(ROW, "u1")),
                          content_type=multipart)
    assert as_json.status_code == 200, as_json.data[:300]
    assert output_of(binary.get_json()) == output_of(as_json.get_json())
