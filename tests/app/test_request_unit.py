"""The experiment's `unit`: `user` (and `session`) keep a unit id's requests on one arm; `request`
assigns each request on its own by the weights, and each request is then its own unit in the
events, the unit counts and the sample-ratio check."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from core.store.models import Prediction
from tests.support.keys import bearer
from tests.support.v2 import drain, experiment, flowers, infer_body, upload_two_iris

REQUESTS = 400


@pytest.mark.parametrize("unit", ["request", "user"])
def test_unit_request_splits_one_callers_requests(v2app: Flask, tmp_path: Path,
                                                  unit: str) -> None:
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload_two_iris(client, admin, tmp_path)
    exp = experiment(client, admin, "units", "iris-onnx", "iris-b", unit=unit)
    arms: Counter[str] = Counter()
    for row in flowers(REQUESTS, seed=5):
        answer = client.post("/v2/models/units/infer", headers=admin,
                             json=infer_body(row[None], "one-caller"))
        assert answer.status_code == 200, answer.get_json()
        arms[answer.get_json()["parameters"]["arm"]] += 1
    if unit == "user":
        assert len(arms) == 1, arms  # sticky
        return
    # 50/50: the treatment's count is Binomial(400, 0.5), sd 10; 140..260 is 6 sd either way.
    assert 140 <= arms["treatment"] <= 260, arms

    drain(v2app, REQUESTS)
    with v2app.extensions["abvoc"].db.reading() as s:
        unit_ids = s.scalars(select(Prediction.unit_id).where(
            Prediction.experiment_id == exp["id"])).all()
    assert len(set(unit_ids)) == REQUESTS and "one-caller" not in unit_ids
    srm = client.get(f"/v1/experiments/{exp['id']}/results", headers=admin).get_json()["srm"]
    assert srm["units"] == dict(arms), srm  # each request counted as its own unit

    # The caller's unit id is no unit of this experiment: an outcome must name its prediction.
    refused = client.post("/v1/outcomes", headers=admin, json={
        "unit_id": "one-caller", "experiment_id": exp["id"], "metric": "won", "value": 1})
    assert refused.status_code == 400 and "prediction_id" in refused.get_json()["error"]


@pytest.mark.parametrize("unit", ["request", "user"])
def test_only_a_request_unit_experiment_serves_requests_without_a_unit_id(
        v2app: Flask, tmp_path: Path, unit: str) -> None:
    """Unit `request` replaces the caller's unit id by a key of each request's own, so a request
    need not send one there; for `user` (and outside experiments) the id is what keeps a unit's
    requests on one arm, or what the event records, and its absence is a 400 that says where to
    send it and where it may be left out."""
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload_two_iris(client, admin, tmp_path)
    exp = experiment(client, admin, "units", "iris-onnx", "iris-b", unit=unit)
    answer = client.post("/v2/models/units/infer", headers=admin, json=infer_body(flowers(1)))
    if unit == "user":
        assert answer.status_code == 400
        error = answer.get_json()["error"]
        assert "'parameters.unit_id' or the X-Abvoc-Unit-Id header" in error
        assert "unit 'request'" in error
        return
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["parameters"]["experiment_id"] == exp["id"]
    drain(v2app, 1)
    with v2app.extensions["abvoc"].db.reading() as s:
        (unit_id,) = s.scalars(select(Prediction.unit_id)).all()
    assert unit_id.startswith("request:")
    # Outside the experiment's scope the caller's unit is recorded, and needed.
    outside = client.post("/v2/models/iris-onnx/infer", headers=admin,
                          json=infer_body(flowers(1)))
    assert outside.status_code == 400 and "unit_id" in outside.get_json()["error"]


def test_a_unit_id_given_twice_differently_is_refused(v2app: Flask, tmp_path: Path) -> None:
    """`parameters.unit_id` and the X-Abvoc-Unit-Id header disagreeing: the body's was used,
    unsaid, so a caller whose proxy sets the header had its users split by another id."""
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload_two_iris(client, admin, tmp_path)
    experiment(client, admin, "twice", "iris-onnx", "iris-b")
    body = infer_body(flowers(1, seed=2), "user-1")
    refused = client.post("/v2/models/twice/infer", json=body,
                          headers={**admin, "X-Abvoc-Unit-Id": "user-2"})
    assert refused.status_code == 400, refused.get_json()
    assert "two different unit ids: 'user-1' in 'parameters.unit_id' and 'user-2'" \
        in refused.get_json()["error"]
    same = client.post("/v2/models/twice/infer", json=body,
                       headers={**admin, "X-Abvoc-Unit-Id": "user-1"})
    assert same.status_code == 200, same.get_json()
