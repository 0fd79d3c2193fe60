"""A guardrail that fires on an experiment another process stopped a moment ago (this worker's
router had not reloaded it yet: the stop's notice, serving/route_changes.py, still on its way)
must not fail the request it was checked on: the answer was recorded already, and the caller got
a 409 about pausing arms instead of its prediction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import update

from app import close_app, create_app
from core.settings import Settings
from core.store.models import Experiment
from serving.experiments import Experiments
from tests.support.keys import bearer
from tests.support.v2 import experiment, flowers, infer_body, upload_two_iris


@pytest.fixture
def stale_router(settings: Settings) -> Iterator[Flask]:
    """An app whose router keeps its view of the experiments for an hour."""
    app = create_app(settings, test_config={"TESTING": True, "ROUTER_REFRESH_S": 3600.0})
    yield app
    close_app(app)


def test_a_breach_on_an_experiment_stopped_elsewhere_still_answers(
        stale_router: Flask, tmp_path: Path) -> None:
    client = stale_router.test_client()
    admin, predict = bearer(stale_router, "admin"), bearer(stale_router, "predict")
    upload_two_iris(client, admin, tmp_path)
    exp = experiment(client, admin, "rails", "iris-b", "iris-onnx",
                     guardrails={"p99_latency_ms": 0.0001, "min_samples": 1})
    assert stale_router.extensions["abvoc_serving"].router.experiment("rails")  # loaded
    with stale_router.extensions["abvoc"].db.session() as s:  # stopped elsewhere, unannounced
        s.execute(update(Experiment).where(Experiment.id == exp["id"]).values(status="stopped"))
    rows = flowers(60, seed=4)
    statuses = [client.post("/v2/models/rails/infer", headers=predict,
                            json=infer_body(rows[i][None], f"u{i}")).status_code
                for i in range(60)]
    assert statuses == [200] * 60
    assert Experiments(stale_router.extensions["abvoc"].db).get(exp["id"])["status"] == "stopped"
