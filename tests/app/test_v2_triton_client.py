"""Triton's own Python HTTP client (tritonclient 2.73, real, in its own environment) switches to
abvoc by changing its base URL: health, model metadata and readiness, inference with its default
binary tensors both ways and with JSON tensors and named outputs, the unit in a header or in the
request's parameters, gzip and deflate bodies, and refusals (a bad input, a model version) that
reach it as the errors abvoc wrote."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from flask import Flask

from tests.support.bundles import EXAMPLE, copy_example, edit
from tests.support.inference_servers import triton_client
from tests.support.keys import bearer
from tests.support.live import serve
from tests.support.v2 import CLASSES, drain, experiment, flowers, upload

ROWS = 12


def test_tritons_client_switches_to_abvoc_by_its_base_url(v2app: Flask,
                                                          tmp_path: Path) -> None:
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload(client, admin, EXAMPLE)
    treatment = copy_example(tmp_path)  # the same model under a second name
    edit(treatment, 'name = "iris-onnx"', 'name = "iris-copy"')
    upload(client, admin, treatment)
    exp = experiment(client, admin, "flowers", "iris-onnx", "iris-copy")
    rows = flowers(ROWS, seed=7)
    with serve(v2app) as url:
        got = triton_client({"url": url, "key": admin["Authorization"].split()[1],
                             "scope": "flowers", "rows": rows.tolist()})

    assert got["live"] and got["ready"] and got["model_ready"]
    assert got["metadata"]["name"] == "flowers"
    assert got["server"]["name"] == "abvoc" and "binary_tensor_data" in got["server"]["extensions"]
    assert got["metadata"]["inputs"] == [{"name": "features", "datatype": "FP32",
                                          "shape": [1, 4]}]
    bare = ort.InferenceSession(str(EXAMPLE / "model.onnx"), providers=["CPUExecutionProvider"])
    probabilities = bare.run(["probabilities"], {"features": rows})[0]
    answers = got["answers"]
    assert [a["binary"] for a in answers] == [i % 2 == 0 for i in range(ROWS)]
    for i, answer in enumerate(answers):
        assert answer["id"] == f"r{i}"
        assert answer["label"] == CLASSES[int(probabilities[i].argmax())]
        np.testing.assert_allclose(answer["probabilities"], probabilities[i:i + 1], rtol=1e-5)
        assert {"prediction_id", "receipt", "arm"} <= set(answer["parameters"])
    assert answers[1]["outputs"] == ["output", "probabilities"]
    assert "label" in answers[0]["outputs"]  # no outputs named: all of them
    assert got["gzip"] == got["deflate"] == answers[0]["label"]
    assert got["refusal"]["status"] == "400"
    assert "inputs must be 'features'" in got["refusal"]["message"]
    assert got["versioned"]["status"] == "404"
    assert "leave the client's model version empty" in got["versioned"]["message"]

    # Every answer is a prediction like any other: corrected through /v1/corrections, counted.
    answer = answers[0]
    truth = CLASSES[(CLASSES.index(answer["label"]) + 1) % 3]
    corrector = bearer(v2app, "correct")
    accepted = client.post("/v1/corrections", headers=corrector, json={
        "prediction_id": answer["parameters"]["prediction_id"],
        "receipt": answer["parameters"]["receipt"], "corrected_output": truth})
    assert accepted.status_code == 202, accepted.get_json()
    drain(v2app, ROWS + 2)
    metrics = client.get(f"/v1/experiments/{exp['id']}/results", headers=admin).get_json()
    cells = [metrics["metrics"][arm]["all"] for arm in ("control", "treatment")]
    assert sum(c["predictions"] for c in cells) == ROWS + 2
    assert sum(c["corrections"] for c in cells) == 1
