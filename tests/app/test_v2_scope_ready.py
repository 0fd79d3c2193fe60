"""GET /v2/models/{scope}/ready says whether every candidate a unit of the scope may be routed
to is ready, not only the control: a 50/50 split whose remote arm is down failed half its
units while the scope said ready."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from tests.support.bundles import EXAMPLE
from tests.support.keys import bearer
from tests.support.ports import free_port
from tests.support.v2 import experiment, remote_bundle, upload


def test_a_scope_with_an_arm_whose_server_is_down_is_not_ready(v2app: Flask,
                                                                tmp_path: Path) -> None:
    client, admin = v2app.test_client(), bearer(v2app, "admin")
    predictor = bearer(v2app, "predict")
    upload(client, admin, EXAMPLE)
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    upload(client, admin, remote_bundle(tmp_path, "iris-down", down, timeout_ms=500),
           check_remote=False)
    exp = experiment(client, admin, "split", "iris-onnx", "iris-down")
    answer = client.get("/v2/models/split/ready", headers=predictor)
    assert answer.status_code == 503, answer.get_json()
    assert "a candidate it routes to does not answer ready" in answer.get_json()["error"]
    assert "iris-down" not in answer.get_json()["error"]  # a predict key learns no candidate
    # With the remote arm paused, its units go to control: the scope is ready.
    paused = client.post(f"/v1/experiments/{exp['id']}/arms/treatment/pause", headers=admin)
    assert paused.status_code == 200, paused.get_json()
    assert client.get("/v2/models/split/ready", headers=predictor).status_code == 200
