"""GET /v1/experiments/{id}/results and /divergence carry the typed metrics (a label candidate's
confusion counts and prediction shift, a number candidate's error comparisons and MAE against
offline), and every such response matches the schema the OpenAPI document gives for it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import close_app, create_app
from app.auth import create_key
from app.openapi import openapi_document
from core.settings import Settings
from core.store.db import Database
from tests.evaluation.test_label_metrics import load_label_experiment
from tests.evaluation.test_two_versions import seed as seed_two_versions
from tests.evaluation.test_typed_comparisons import load_numbers


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    flask_app = create_app(settings, test_config={"TESTING": True, "ROUTER_REFRESH_S": 0.0})
    yield flask_app
    close_app(flask_app)


def _get(client: FlaskClient, admin: dict[str, str], path: str, schema: str) -> dict[str, Any]:
    response = client.get(path, headers=admin)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    document = openapi_document()
    validator = jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{schema}",
                                             "components": document["components"]})
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}"
              for e in validator.iter_errors(body)]
    assert not errors, errors[:5]
    return body


def _admin(app: Flask) -> tuple[Database, FlaskClient, dict[str, str]]:
    db = app.extensions["abvoc"].db
    key = create_key(db, ["admin"])["key"]
    return db, app.test_client(), {"Authorization": f"Bearer {key}"}


def test_label_reports_over_http(app: Flask) -> None:
    db, client, admin = _admin(app)
    exp = load_label_experiment(db)
    results = _get(client, admin, f"/v1/experiments/{exp}/results", "ResultsReport")
    control = results["label_metrics"]["control"]["slices"]["all"]
    assert control["confusion"]["counts"] == [[3, 1, 1], [1, 2, 0], [0, 0, 2]]
    assert control["prediction_shift"]["chi_square"] is not None
    divergence = _get(client, admin, f"/v1/experiments/{exp}/divergence", "DivergenceReport")
    assert {m["candidate"] for m in divergence["label_metrics"]} == {"cand-a", "cand-b"}
    assert any(f["kind"] == "prediction_shift" for f in divergence["findings"])


def test_number_reports_over_http(app: Flask) -> None:
    db, client, admin = _admin(app)
    errors = np.abs(np.random.default_rng(9).normal(0, 0.5, 50))
    row = {"n": 50, "mae": float(errors.mean()), "rmse": float(np.sqrt(np.mean(errors ** 2)))}
    exp, _, _ = load_numbers(db, offline={"overall": row, "slices": {"printed/middle": row}})
    results = _get(client, admin, f"/v1/experiments/{exp}/results", "ResultsReport")
    assert {"absolute_error", "squared_error"} <= {r["metric"] for r in results["comparisons"]}
    assert results["metrics"]["control"]["all"]["mae"] > 0
    divergence = _get(client, admin, f"/v1/experiments/{exp}/divergence?tolerance=0.01",
                      "DivergenceReport")
    assert any(f["kind"] == "error_gap" for f in divergence["findings"])


def test_the_document_names_the_typed_report_schemas() -> None:
    document = openapi_document()
    paths = document["paths"]
    for path, schema in (("/v1/experiments/{experiment_id}/results", "ResultsReport"),
                         ("/v1/experiments/{experiment_id}/divergence", "DivergenceReport")):
        ok = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": f"#/components/schemas/{schema}"}
    assert "absolute_error" in document["components"]["schemas"]["ExperimentSpec"][
        "properties"]["primary_metric"]["enum"]


def test_two_versions_of_one_name_over_http(app: Flask) -> None:
    """Control iris v1 and treatment iris v2: /divergence has a row per version, each with its
    `version`, and /results names each arm's version, all in the documented shape."""
    db, client, admin = _admin(app)
    exp = seed_two_versions(db)
    divergence = _get(client, admin, f"/v1/experiments/{exp}/divergence", "DivergenceReport")
    overall = {(r["candidate"], r["version"]): r["online"]["n"] for r in divergence["slices"]
               if r["slice"] == "all"}
    assert overall == {("iris", "1"): 200, ("iris", "2"): 200}
    assert {(r["candidate"], r["version"]) for r in divergence["stage_attribution"]["rows"]} \
        == {("iris", "1"), ("iris", "2")}
    assert all(f["explanation"].startswith(f"iris v{f['version']} ")
               for f in divergence["findings"])
    results = _get(client, admin, f"/v1/experiments/{exp}/results", "ResultsReport")
    assert [(v["name"], v["version"]) for v in results["variants"]] == [
        ("control", "1"), ("treatment", "2")]
    assert results["label_metrics"]["treatment"]["version"] == "2"
