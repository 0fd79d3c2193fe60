"""A team's ONNX bundle and the same model on their own inference server (real MLServer 1.7.1
and KServe 0.21), registered through the API and split 50/50 in one experiment, driven through
POST /v2/models/{scope}/infer; corrections through /v1/corrections; the events reach /results
through the outbox, the bus and the worker."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from flask import Flask
from sqlalchemy import func, select

from core.store.models import OutboxEvent, ServedPrediction
from serving.images import encode_png
from tests.support import inference_servers
from tests.support.bundles import EXAMPLE
from tests.support.keys import bearer
from tests.support.v2 import (
    CLASSES,
    drain,
    experiment,
    flowers,
    infer_body,
    output_of,
    remote_bundle,
    upload,
)

REQUESTS = 300


@pytest.fixture(scope="module", params=["mlserver", "kserve"])
def server(request: pytest.FixtureRequest) -> Iterator[inference_servers.InferenceServer]:
    running = getattr(inference_servers, request.param)(EXAMPLE / "model.onnx").start()
    yield running
    running.stop()


def test_bundle_and_remote_server_split_in_one_experiment(
        v2app: Flask, server: inference_servers.InferenceServer, tmp_path: Path) -> None:
    client = v2app.test_client()
    admin, predictor, corrector = (bearer(v2app, s) for s in ("admin", "predict", "correct"))
    remote_name = f"iris-{server.kind.lower()}"
    upload(client, admin, EXAMPLE)
    upload(client, admin, remote_bundle(tmp_path, remote_name, server.url))
    exp = experiment(client, admin, "flowers", "iris-onnx", remote_name)

    meta = client.get("/v2/models/flowers", headers=predictor)
    assert meta.status_code == 200, meta.get_json()
    # The bundle takes [-1, 4]; a request holds one item (a label is one prediction).
    assert meta.get_json()["inputs"] == [{"name": "features", "datatype": "FP32",
                                          "shape": [1, 4]}]
    assert meta.get_json()["outputs"][0]["parameters"] == {"output_type": "label",
                                                           "classes": CLASSES}
    assert "parameters" not in meta.get_json()  # which candidate: admin keys only
    assert client.get("/v2/models/flowers/ready", headers=predictor).status_code == 200

    rows = flowers(REQUESTS, seed=1)
    bare = ort.InferenceSession(str(EXAMPLE / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = bare.run(["probabilities"], {"features": rows})[0].argmax(axis=1)
    answers, arms = [], Counter()
    for i, row in enumerate(rows):
        unit = f"user-{i}"
        headers = admin if i % 10 == 0 else predictor
        response = client.post("/v2/models/flowers/infer", headers=headers,
                               json=infer_body(row[None], unit, id=f"req-{i}"))
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["id"] == f"req-{i}" and body["model_name"] == "flowers"
        # Both arms serve the same model: the same label, whichever answered.
        assert output_of(body) == CLASSES[expected[i]], (i, body)
        assert set(body["parameters"]) >= {"prediction_id", "receipt"}
        if headers is admin:
            arms[body["parameters"]["arm"]] += 1
        else:
            assert "arm" not in body["parameters"] and "candidate" not in body["parameters"]
        answers.append(body["parameters"])
    assert set(arms) == {"control", "treatment"}

    services = v2app.extensions["abvoc"]
    with services.db.session() as s:
        served = Counter(s.scalars(select(ServedPrediction.arm)).all())
        errors = s.scalar(select(ServedPrediction.error).where(ServedPrediction.error))
    assert sum(served.values()) == REQUESTS and errors is None
    assert 110 <= served["treatment"] <= 190, served  # 50/50: ±4.6 standard deviations

    wrong = 0
    for i, a in enumerate(answers[:60]):
        truth = CLASSES[(expected[i] + (i % 3 == 0)) % 3]
        wrong += truth != CLASSES[expected[i]]
        accepted = client.post("/v1/corrections", headers=corrector, json={
            "prediction_id": a["prediction_id"], "receipt": a["receipt"],
            "corrected_output": truth})
        assert accepted.status_code == 202, accepted.get_json()

    drain(v2app, REQUESTS)
    results = client.get(f"/v1/experiments/{exp['id']}/results", headers=admin)
    assert results.status_code == 200, results.get_json()
    metrics = results.get_json()["metrics"]
    counted = {arm: metrics[arm]["all"]["predictions"] for arm in ("control", "treatment")}
    assert counted == {"control": served["control"], "treatment": served["treatment"]}
    assert sum(metrics[arm]["all"]["corrections"] for arm in counted) == 60
    cells = [metrics[arm]["all"] for arm in counted]
    assert sum(c["truth_known"] for c in cells) == 60
    assert round(sum(c["exact_match"] * c["truth_known"] for c in cells)) == 60 - wrong
    # Label candidates: confusion counts per arm, corrected answers at (answer, truth) and the
    # uncorrected ones on the diagonal (as the accuracy bound counts them).
    tables = [results.get_json()["label_metrics"][arm]["slices"]["all"]["confusion"]
              for arm in counted]
    assert all(t["classes"] == CLASSES for t in tables)
    assert sum(np.sum(t["with_truth"]) for t in tables) == 60
    assert sum(np.trace(t["with_truth"]) for t in tables) == 60 - wrong
    assert [int(np.sum(t["counts"])) for t in tables] == [served[arm] for arm in counted]
    divergence = client.get(f"/v1/experiments/{exp['id']}/divergence", headers=admin)
    assert divergence.status_code == 200 and "findings" in divergence.get_json()
    assert {m["candidate"] for m in divergence.get_json()["label_metrics"]} == {
        "iris-onnx", remote_name}


def test_prediction_events_carry_the_label_output_type(v2app: Flask, tmp_path: Path) -> None:
    """The event is v2: a label, its type and the confidence from the bundle's own tensor."""
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload(client, admin, EXAMPLE)
    response = client.post("/v2/models/default/infer", headers=admin,
                           json=infer_body(flowers(1)[:1], "u1"))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["parameters"]["candidate"] == "iris-onnx"
    meta = client.get("/v2/models/default", headers=admin).get_json()
    assert meta["parameters"] == {"candidate": "iris-onnx", "candidate_version": "1"}
    with v2app.extensions["abvoc"].db.session() as s:
        (payload,) = s.scalars(select(OutboxEvent.payload)).all()
    event = json.loads(payload)
    assert event["schema_version"] == 3 and event["output_type"] == "label"
    assert event["candidate_version"] == "1" and "excluded" not in event
    assert event["output"] == output_of(body)
    probabilities = next(t for t in body["outputs"] if t["name"] == "probabilities")
    assert event["confidence"] == pytest.approx(max(probabilities["data"]), rel=1e-6)
    label = next(t for t in body["outputs"] if t["name"] == "label")
    assert label["parameters"] == {"content_type": "str"} and label["data"] == [event["output"]]
    assert np.isclose(sum(probabilities["data"]), 1.0, atol=1e-5)


def test_forced_and_held_requests_stay_out_of_the_experiments_figures(v2app: Flask) -> None:
    """An admin's X-Abvoc-Force-Arm is QA traffic, and a paused experiment sends every unit to
    its control: neither is in the split the results compare. Their events have no experiment
    or arm (so no result, unit count or sample-ratio check sees them) but say where they went
    and why, as their ledger rows do; those rows are not the arm's routed requests (guardrails,
    canary steps) when forced."""
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload(client, admin, EXAMPLE)
    exp = experiment(client, admin, "qa", "iris-onnx", "iris-onnx")

    def send(headers: dict[str, str]) -> dict:
        answer = client.post("/v2/models/qa/infer", headers=headers,
                             json=infer_body(flowers(1)[:1], "u1"))
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()["parameters"]

    said = send({**admin, "X-Abvoc-Force-Arm": "treatment"})
    assert said["experiment_id"] is None and said["arm"] == "treatment"
    assert said["excluded"] == f"forced: kept out of experiment {exp['id']}'s results"
    assert "excluded" not in send(admin)
    assert client.post(f"/v1/experiments/{exp['id']}/pause", headers=admin).status_code == 200
    assert send(admin)["excluded"].startswith("paused: kept out")
    with v2app.extensions["abvoc"].db.session() as s:
        forced, routed, held = (json.loads(p) for p in s.scalars(
            select(OutboxEvent.payload).order_by(OutboxEvent.id)))
        ledger = {r.prediction_id: r for r in s.scalars(select(ServedPrediction))}
    assert forced["excluded"] == {"experiment_id": exp["id"], "arm": "treatment",
                                  "reason": "forced"}
    assert held["excluded"] == {"experiment_id": exp["id"], "arm": "control",
                                "reason": "paused"}
    for event in (forced, held):
        assert event["experiment_id"] is None and event["arm"] is None
    assert routed["experiment_id"] == exp["id"] and "excluded" not in routed
    qa = ledger[forced["prediction_id"]]
    assert (qa.experiment_id, qa.arm, qa.latency_ms, qa.version) == (exp["id"], "treatment",
                                                                     None, "1")
    assert ledger[routed["prediction_id"]].latency_ms is not None
    assert ledger[held["prediction_id"]].arm == "control"
    # The ledger keeps why too, for the inspector (the worker's record has no experiment).
    assert [ledger[e["prediction_id"]].excluded for e in (forced, routed, held)] == [
        "forced", None, "paused"]


def test_a_predict_key_is_not_told_which_candidate_serves_it(v2app: Flask) -> None:
    """An image sent to a scope whose candidate takes tensors: the 400 says where to send it
    but not the candidate's name (only admin keys learn which candidate serves a unit)."""
    client = v2app.test_client()
    upload(client, bearer(v2app, "admin"), EXAMPLE)
    image = base64.b64encode(encode_png(np.full((20, 20), 255, np.uint8))).decode()
    refused = client.post("/v1/predict", headers=bearer(v2app, "predict"),
                          json={"image_base64": image, "unit_id": "u1"})
    assert refused.status_code == 400, refused.get_json()
    error = refused.get_json()["error"]
    assert "/v2/models/default/infer" in error and "iris-onnx" not in error


def test_an_arm_named_in_other_letters_is_forced_percent_encoded(v2app: Flask) -> None:
    """A header value that is not ASCII reaches the app empty under granian: 'trésor' was read
    as no header, and the forced QA request routed and counted. An empty value is now a 400
    saying how to send it, percent-encoded as UTF-8, which names the arm."""
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload(client, admin, EXAMPLE)
    created = client.post("/v1/experiments", headers=admin, json={
        "name": "accents", "scope": "qa", "arms": [
            {"name": "contrôle", "candidate": "iris-onnx", "weight": 0.5, "control": True},
            {"name": "trésor", "candidate": "iris-onnx", "weight": 0.5}]})
    assert created.status_code == 201, created.get_json()
    exp = created.get_json()["id"]
    assert client.post(f"/v1/experiments/{exp}/start", headers=admin).status_code == 200

    def send(headers: dict[str, str]):  # noqa: ANN202 - a test response
        return client.post("/v2/models/qa/infer", headers={**admin, **headers},
                           json=infer_body(flowers(1)[:1], "u1"))

    for header, words in (("X-Abvoc-Force-Arm", "percent-encoded as UTF-8"),
                          ("X-Abvoc-Unit-Id", "'parameters.unit_id'")):
        refused = send({header: ""})  # what granian hands the app for 'trésor'
        assert refused.status_code == 400, refused.get_json()
        error = refused.get_json()["error"]
        assert error.startswith(f"header '{header}' is empty: header values must be "
                                "non-empty ASCII text") and words in error, error
    with v2app.extensions["abvoc"].db.session() as s:
        assert s.scalar(select(func.count()).select_from(ServedPrediction)) == 0
    forced = send({"X-Abvoc-Force-Arm": "tr%C3%A9sor"})
    assert forced.status_code == 200, forced.get_json()
    said = forced.get_json()["parameters"]
    assert said["arm"] == "trésor" and said["excluded"].startswith("forced: kept out")
    bad = send({"X-Abvoc-Force-Arm": "tr%E9sor"})
    assert bad.status_code == 400 and "%-escapes are not UTF-8" in bad.get_json()["error"]
