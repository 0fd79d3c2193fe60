"""GET /v1/experiments/{id}/unit-outcomes: one unit's outcomes as the worker has counted them,
so a sender (the game league) waits for its own units, not for a total other senders reach."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from app import close_app
from tests.app.test_outcome_missing import _app
from tests.app.test_outcomes_flow import _drain
from tests.support.keys import bearer
from tests.support.v2 import experiment, flowers, infer_body, upload_two_iris


def test_a_units_counted_outcomes_per_metric(tmp_path: Path) -> None:
    app = _app(tmp_path)
    try:
        _run(app, tmp_path)
    finally:
        close_app(app)


def _run(app: Flask, tmp_path: Path) -> None:
    client = app.test_client()
    admin, product = bearer(app, "admin"), bearer(app, "outcome")
    upload_two_iris(client, admin, tmp_path)
    exp = experiment(client, admin, "game", "iris-onnx", "iris-b", salt="unit-outcomes")["id"]
    made = client.post(f"/v1/experiments/{exp}/metrics", headers=admin, json={
        "name": "won", "kind": "mean", "direction": "higher", "combine": "mean"})
    assert made.status_code == 201, made.get_json()
    served = client.post("/v2/models/game/infer", headers=admin,
                         json=infer_body(flowers(1, seed=3), "player/1"))
    arm = served.get_json()["parameters"]["arm"]
    for k in range(3):
        sent = client.post("/v1/outcomes", headers=product, json={
            "unit_id": "player/1", "experiment_id": exp, "metric": "won", "value": k % 2,
            "event_id": f"won-{k}"})
        assert sent.status_code == 202, sent.get_json()
    url = f"/v1/experiments/{exp}/unit-outcomes"
    before = client.get(url, headers=admin, query_string={"unit_id": "player/1"})
    assert before.status_code == 200, before.get_json()
    assert before.get_json() == {"experiment_id": exp, "unit_id": "player/1", "outcomes": {}}
    _drain(app, 3)
    after = client.get(url, headers=admin, query_string={"unit_id": "player/1"}).get_json()
    assert after["outcomes"] == {"won": {"arms": {arm: 3}, "n": 3}}
    other = client.get(url, headers=admin, query_string={"unit_id": "player/2"}).get_json()
    assert other["outcomes"] == {}
    for query, status in (({}, 400), ({"unit_id": ""}, 400), ({"unit_id": "x" * 201}, 400),
                          ({"unit_id": "a", "unit": "b"}, 400)):
        refused = client.get(url, headers=admin, query_string=query)
        assert refused.status_code == status, (query, refused.get_json())
    assert client.get(f"/v1/experiments/{exp + 1}/unit-outcomes", headers=admin,
                      query_string={"unit_id": "a"}).status_code == 404
    assert client.get(url, headers=product, query_string={"unit_id": "a"}).status_code == 403
