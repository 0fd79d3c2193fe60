"""Guardrails pause a slow treatment; a three-arm experiment with a shadow runs end to end, its
events landing in the evaluation store through the outbox, the bus and the worker."""

from __future__ import annotations

import time
from collections import Counter

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core.outbox import OutboxRelay
from core.store.models import Prediction
from evaluation.worker import make_worker
from tests.app.test_experiments_api import ARMS, act, create
from tests.app.test_predict_flow import predict
from tests.support.flow import swap_loaded


class SlowCandidate:
    """A real candidate that answers 300 ms late, as a model on an overloaded host would (far
    enough past the 200 ms limit that a busy test machine cannot blur the two arms)."""

    def __init__(self, candidate) -> None:  # noqa: ANN001
        self.candidate = candidate
        self.accepts, self.output_type = candidate.accepts, candidate.output_type

    def predict(self, image, finish=None):  # noqa: ANN001, ANN201
        time.sleep(0.3)
        return self.candidate.predict(image, finish)

    def close(self) -> None:
        self.candidate.close()


def test_slow_treatment_is_paused_by_its_guardrail(app: Flask, client: FlaskClient,
                                                    admin: dict) -> None:
    swap_loaded(app.extensions["abvoc_serving"].pool, "ocr-large-mixed", SlowCandidate)

    exp = create(client, admin, guardrails={"p99_latency_ms": 200, "min_samples": 20})
    act(client, admin, exp["id"], "start")
    served = Counter(predict(client, admin, unit=f"g{u}").get_json()["arm"] for u in range(150))
    shown = client.get(f"/v1/experiments/{exp['id']}", headers=admin).get_json()
    large = next(a for a in shown["arms"] if a["name"] == "large")
    assert large["paused"] and "p99 latency" in large["paused"]
    assert "large" in shown["status_reason"]
    assert shown["weights"][2] == 0.0
    # Paused after its first window: the slow arm stopped getting traffic.
    assert 20 <= served["large"] < 50
    after = Counter(predict(client, admin, unit=f"g{u}").get_json()["arm"] for u in range(40))
    assert "large" not in after
    # The healthy treatment kept its traffic.
    assert after["mixed"] > 0


def test_three_arms_and_a_shadow_end_to_end(app: Flask, client: FlaskClient, admin: dict,
                                            predictor: dict, corrector: dict) -> None:
    exp = create(client, admin, shadows=[{"candidate": "ocr-large-mixed"}],
                 arms=[ARMS[0], ARMS[1], dict(ARMS[2], candidate="ocr-small-mixed", name="b")])
    act(client, admin, exp["id"], "start")
    answers = [predict(client, predictor, unit=f"user-{u}", seed=u,
                       slice="handwritten/middle").get_json() for u in range(45)]
    assert all("candidate" not in a for a in answers)  # never shown without admin
    for a in answers[::3]:
        accepted = client.post("/v1/corrections", headers=corrector, json={
            "prediction_id": a["prediction_id"], "receipt": a["receipt"],
            "corrected_output": "x^{2}"})
        assert accepted.status_code == 202
    serving = app.extensions["abvoc_serving"]
    serving.predict.close()  # wait for the shadow runs to be recorded

    services = app.extensions["abvoc"]
    OutboxRelay(services.db, services.bus).relay_once()
    worker = make_worker(services.db, services.bus, services.settings.topic_prefix,
                         secret=services.settings.secret_key)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        worker.step(timeout_ms=200)
        with services.db.session() as s:
            rows = s.execute(select(Prediction.arm, Prediction.shadow, Prediction.candidate,
                                    Prediction.prediction_id)).all()
        if len(rows) >= 90:
            break
    worker.close()
    served = [r for r in rows if not r.shadow]
    shadows = [r for r in rows if r.shadow]
    assert len(served) == 45 and len(shadows) == 45
    assert {r.arm for r in served} == {"control", "mixed", "b"}
    assert {r.candidate for r in shadows} == {"ocr-large-mixed"}
    assert {a["prediction_id"] for a in answers} == {r.prediction_id for r in served}

    results = client.get(f"/v1/experiments/{exp['id']}/results", headers=admin)
    assert results.status_code == 200, results.get_json()
    body = results.get_json()
    assert {v["name"] for v in body["variants"] if not v["shadow"]} == {"control", "mixed", "b"}
    assert body["comparisons"] and body["decision"]["action"] in ("ship", "keep_running", "stop")
    served_metrics = {v["name"]: body["metrics"][v["name"]]["all"] for v in body["variants"]
                      if not v["shadow"]}
    assert sum(m["corrections"] for m in served_metrics.values()) == 15
    shadow = next(v["name"] for v in body["variants"] if v["shadow"])
    assert body["metrics"][shadow]["all"]["correction_rate"] is None  # nobody saw its answers
    assert body["metrics"][shadow]["all"]["predictions"] == 45
    divergence = client.get(f"/v1/experiments/{exp['id']}/divergence", headers=admin)
    assert divergence.status_code == 200 and "findings" in divergence.get_json()
    refused = client.get(f"/v1/experiments/{exp['id']}/divergence?alpha=2", headers=admin)
    assert refused.status_code == 400
    # Plain digits only: float() read '1_0e-2' as 0.1 and other scripts' digits as ours.
    for odd in ("1_0e-2", "\uff10.5", "0x1p-4", "nan", "1.", ""):
        said = client.get(f"/v1/experiments/{exp['id']}/divergence", headers=admin,
                          query_string={"alpha": odd})
        assert said.status_code == 400 and "plain digits" in said.get_json()["error"], odd
    assert divergence.get_json()["window"] is None  # the hours read, as /results says them
    windowed = client.get(f"/v1/experiments/{exp['id']}/divergence", headers=admin,
                          query_string={"since": "2026-01-01T10:30:00Z", "alpha": ".01"})
    assert windowed.get_json()["window"] == {"since": "2026-01-01T10:00:00+00:00",
                                             "until": None}


def test_metrics_count_requests_per_candidate(client: FlaskClient, predictor: dict) -> None:
    predict(client, predictor)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'abvoc_http_requests_total{endpoint="/v1/predict",method="POST",status="200"} 1.0' \
        in text
    assert "abvoc_prediction_duration_seconds_bucket{candidate=" in text
    assert 'abvoc_predictions_total{candidate="' in text and 'outcome="ok"} 1.0' in text
    # Methods a client makes up are one label value, not one each.
    for method in ("FOO", "BAR"):
        assert client.open("/healthz", method=method).status_code == 405
    text = client.get("/metrics").get_data(as_text=True)
    assert 'abvoc_http_requests_total{endpoint="unmatched",method="other",status="405"} 2.0' \
        in text
    assert "FOO" not in text and "BAR" not in text
