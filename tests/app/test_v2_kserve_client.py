"""KServe's own V2 REST client (kserve 0.21, real, in KServe's environment) switches to abvoc by
changing its base URL: its bodies name the model (`model_name`), which abvoc takes when it is the
URL's; JSON and binary tensors, the request id, labels read as text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from flask import Flask

from tests.support.bundles import EXAMPLE, copy_example, edit
from tests.support.inference_servers import kserve_client
from tests.support.keys import bearer
from tests.support.live import serve
from tests.support.v2 import CLASSES, experiment, flowers, upload

ROWS = 6


def test_kserves_client_switches_to_abvoc_by_its_base_url(v2app: Flask, tmp_path: Path) -> None:
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload(client, admin, EXAMPLE)
    treatment = copy_example(tmp_path)
    edit(treatment, 'name = "iris-onnx"', 'name = "iris-copy"')
    upload(client, admin, treatment)
    experiment(client, admin, "flowers", "iris-onnx", "iris-copy")
    rows = flowers(ROWS, seed=11)
    with serve(v2app) as url:
        got = kserve_client({"url": url, "key": admin["Authorization"].split()[1],
                             "scope": "flowers", "rows": rows.tolist()})
    assert got["live"] and got["ready"] and got["model_ready"]
    bare = ort.InferenceSession(str(EXAMPLE / "model.onnx"), providers=["CPUExecutionProvider"])
    probabilities = bare.run(["probabilities"], {"features": rows})[0]
    assert [a["binary"] for a in got["answers"]] == [i % 2 == 1 for i in range(ROWS)]
    for i, answer in enumerate(got["answers"]):
        assert answer["id"] == f"k{i}"
        assert answer["label"] == CLASSES[int(probabilities[i].argmax())]
        np.testing.assert_allclose(answer["probabilities"], probabilities[i:i + 1], rtol=1e-5)
        assert {"prediction_id", "receipt", "arm"} <= set(answer["parameters"])
