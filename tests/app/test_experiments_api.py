"""Experiments through the admin API: life cycle, scope ownership, routing, kill switch, canary."""

from __future__ import annotations

from collections import Counter

import pytest
from flask.testing import FlaskClient

from tests.app.test_predict_flow import predict

ARMS = [
    {"name": "control", "candidate": "ocr-small-printed", "weight": 0.34, "control": True},
    {"name": "mixed", "candidate": "ocr-small-mixed", "weight": 0.33},
    {"name": "large", "candidate": "ocr-large-mixed", "weight": 0.33},
]


def create(client: FlaskClient, admin: dict, **spec):  # noqa: ANN003, ANN201
    body = {"name": "three-arms", "arms": ARMS, **spec}
    response = client.post("/v1/experiments", json=body, headers=admin)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def act(client: FlaskClient, admin: dict, exp_id: int, action: str, **body):  # noqa: ANN003, ANN201
    return client.post(f"/v1/experiments/{exp_id}/{action}", json=body or None, headers=admin)


def test_life_cycle_and_scope_ownership(client: FlaskClient, admin: dict) -> None:
    exp = create(client, admin)
    assert exp["status"] == "draft" and exp["weights"] == [0.34, 0.33, 0.33]
    # The default tuning is written into the experiment, so a later default cannot re-tune it.
    assert exp["expected_sample_per_arm"] == 5000
    # The bucket table as an object (it was a JSON string inside the JSON): every bucket once.
    table = exp["allocation_table"]
    assert table["weights"] == pytest.approx([0.34, 0.33, 0.33])
    assert sum(buckets for _, buckets in table["runs"]) == 10_000
    assert act(client, admin, exp["id"], "start").get_json()["status"] == "running"
    other = create(client, admin, name="rival")
    clash = act(client, admin, other["id"], "start")
    assert clash.status_code == 409 and "owned by" in clash.get_json()["error"]
    assert act(client, admin, exp["id"], "pause", reason="checking").get_json()["status"] == \
        "paused"
    assert act(client, admin, exp["id"], "resume").get_json()["status"] == "running"
    assert act(client, admin, exp["id"], "stop").get_json()["status"] == "stopped"
    assert act(client, admin, other["id"], "start").status_code == 200
    listed = client.get("/v1/experiments", headers=admin).get_json()["experiments"]
    assert [e["name"] for e in listed] == ["three-arms", "rival"]
    sized = create(client, admin, name="sized", expected_sample_per_arm=20000)
    assert client.get(f"/v1/experiments/{sized['id']}", headers=admin).get_json()[
        "expected_sample_per_arm"] == 20000


def test_bad_experiments_are_refused(client: FlaskClient, admin: dict) -> None:
    cases = [
        ({"name": "x", "arms": ARMS[:1]}, "at least two"),
        ({"name": "x", "arms": [dict(a, control=False) for a in ARMS]}, "control"),
        ({"name": "x", "arms": [ARMS[0], dict(ARMS[1], candidate="nope")]}, "not registered"),
        ({"name": "x", "arms": ARMS, "unit": "planet"}, "unit"),
        ({"name": "x", "arms": ARMS, "canary": {"treatment": "control", "steps": [0.1]}},
         "treatment"),
        ({"name": "x", "arms": [ARMS[0], dict(ARMS[1], weight=-1)]}, "weight"),
        ({"name": "x", "arms": ARMS, "expected_sample_per_arm": 2.5}, "expected_sample_per_arm"),
        ({"name": "x", "arms": ARMS, "expected_sample_per_arm": 5}, "expected_sample_per_arm"),
        ({"name": "x", "arms": ARMS, "expected_sample_per_arm": True},
         "expected_sample_per_arm"),
    ]
    for body, words in cases:
        response = client.post("/v1/experiments", json=body, headers=admin)
        assert response.status_code == 400, body
        assert words in response.get_json()["error"], response.get_json()
    assert client.get("/v1/experiments", headers=admin).get_json()["experiments"] == []


def test_sticky_routing_forced_arm_and_kill_switch(client: FlaskClient, admin: dict,
                                                   predictor: dict) -> None:
    exp = create(client, admin)
    act(client, admin, exp["id"], "start")
    arms = {u: predict(client, admin, unit=f"user-{u}").get_json()["arm"] for u in range(30)}
    assert set(arms.values()) == {"control", "mixed", "large"}
    again = {u: predict(client, admin, unit=f"user-{u}", seed=7).get_json()["arm"]
             for u in range(30)}
    assert again == arms  # sticky across requests

    forced = client.post("/v1/predict", headers={**admin, "X-Abvoc-Force-Arm": "large"},
                         json=_body())
    assert forced.get_json()["arm"] == "large"
    # A QA request counts in no experiment, and its answer says so as its event does.
    assert forced.get_json()["experiment_id"] is None
    assert forced.get_json()["excluded"] == {"experiment_id": exp["id"], "arm": "large",
                                             "reason": "forced"}
    refused = client.post("/v1/predict", headers={**predictor, "X-Abvoc-Force-Arm": "large"},
                          json=_body())
    assert refused.status_code == 403

    act(client, admin, exp["id"], "kill")
    killed = Counter(predict(client, admin, unit=f"user-{u}").get_json()["arm"]
                     for u in range(30))
    assert killed == {"control": 30}


def test_canary_ramp_keeps_early_units(client: FlaskClient, admin: dict) -> None:
    exp = create(client, admin, name="canary",
                 arms=[ARMS[0], dict(ARMS[2], weight=0.5)],
                 canary={"treatment": "large", "steps": [0.1, 0.5]})
    assert exp["weights"] == [0.9, 0.1]
    act(client, admin, exp["id"], "start")
    first = {u for u in range(60)
             if predict(client, admin, unit=f"c{u}").get_json()["arm"] == "large"}
    assert act(client, admin, exp["id"], "advance").get_json()["weights"] == [0.5, 0.5]
    second = {u for u in range(60)
              if predict(client, admin, unit=f"c{u}").get_json()["arm"] == "large"}
    assert first <= second and len(second) > len(first)


def _body() -> dict:
    import base64

    from serving.images import encode_png
    from workloads.ocr.dataset import ONLINE_MIX, sample_requests

    image = next(sample_requests(1, ONLINE_MIX, seed=1)).image
    return {"image_base64": base64.b64encode(encode_png(image)).decode(), "unit_id": "qa"}


def test_predict_takes_no_unit_id_where_each_request_is_its_own_unit(
        client: FlaskClient, admin: dict) -> None:
    """/v1/predict as V2 does: the unit id is optional on a scope whose experiment has unit
    `request`, and still asked for elsewhere, naming the field."""
    exp = create(client, admin, scope="per-request", unit="request")
    assert act(client, admin, exp["id"], "start").status_code == 200
    served = predict(client, admin, unit=None, scope="per-request")
    assert served.status_code == 200, served.get_json()
    assert served.get_json()["experiment_id"] == exp["id"]
    refused = predict(client, admin, unit=None)
    assert refused.status_code == 400 and "'unit_id'" in refused.get_json()["error"]
