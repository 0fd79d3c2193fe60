"""An experiment's primary metric must be one its arms' answers can give: a label experiment
decided by absolute_error (a number's) was accepted and then waited for ever, "no baseline yet
on the control arm"."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from tests.support.keys import bearer
from tests.support.v2 import upload_two_iris


def _spec(primary: str) -> dict:
    return {"name": f"e-{primary}", "scope": f"s-{primary}", "primary_metric": primary,
            "arms": [{"name": "c", "candidate": "iris-onnx", "weight": 1, "control": True},
                     {"name": "t", "candidate": "iris-b", "weight": 1}]}


def test_a_primary_metric_the_arms_cannot_give_is_refused(v2app: Flask, tmp_path: Path) -> None:
    client, admin = v2app.test_client(), bearer(v2app, "admin")
    upload_two_iris(client, admin, tmp_path)
    for primary in ("absolute_error", "squared_error", "token_edit_distance"):
        refused = client.post("/v1/experiments", headers=admin, json=_spec(primary))
        assert refused.status_code == 400, refused.get_json()
        error = refused.get_json()["error"]
        assert f"'primary_metric' {primary!r} has nothing to measure in answers of type " \
               "'label'" in error and "'exact_match'" in error, error
    assert client.get("/v1/experiments", headers=admin).get_json()["experiments"] == []
    for primary in ("exact_match", "correction_rate", "latency_ms"):
        made = client.post("/v1/experiments", headers=admin, json=_spec(primary))
        assert made.status_code == 201, made.get_json()
