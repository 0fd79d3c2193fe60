"""Retiring a version takes it out of new experiments only: one an experiment runs now serves
on until that experiment stops, and the answer says where; a scope named after a retired
candidate says it is retired, and registering its version again says so too."""

from __future__ import annotations

from flask import Flask

from tests.support.bundles import EXAMPLE
from tests.support.keys import bearer
from tests.support.v2 import experiment, flowers, infer_body, upload


def test_retiring_a_served_version_says_where_it_serves_on(v2app: Flask) -> None:
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload(client, admin, EXAMPLE)
    exp = experiment(client, admin, "flowers", "iris-onnx", "iris-onnx")
    retired = client.post("/v1/candidates/iris-onnx/retire", headers=admin)
    assert retired.status_code == 200
    body = retired.get_json()
    assert [(c["name"], c["version"]) for c in body["retired"]] == [("iris-onnx", "1")]
    assert sorted(u["as"] for u in body["still_served"]) == ["control", "treatment"]
    assert {(u["experiment_id"], u["status"], u["version"]) for u in body["still_served"]} == \
        {(exp["id"], "running", "1")}
    served = client.post("/v2/models/flowers/infer", headers=admin,
                         json=infer_body(flowers(1)[:1], "u1"))
    assert served.status_code == 200  # as the answer said: served on until the experiment stops

    named = client.post("/v2/models/iris-onnx/infer", headers=admin,
                        json=infer_body(flowers(1)[:1], "u1"))
    assert named.status_code == 404
    assert "candidate 'iris-onnx' is retired" in named.get_json()["error"]

    again = client.post("/v1/candidates", headers=admin, content_type="multipart/form-data",
                        data={"bundle": (_tar(), "bundle.tar.gz")})
    assert again.status_code == 409
    assert "already registered (and retired)" in again.get_json()["error"]

    assert client.post(f"/v1/experiments/{exp['id']}/stop", headers=admin).status_code == 200
    twice = client.post("/v1/candidates/iris-onnx/retire", headers=admin).get_json()
    assert twice == {"retired": [], "still_served": []}


def _tar():  # noqa: ANN202
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(EXAMPLE, arcname=EXAMPLE.name)
    buffer.seek(0)
    return buffer
