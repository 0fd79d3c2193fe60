"""POST /v1/outcomes tells an outcome key nothing of the experiment's metric names (only an
admin key is shown them), and refuses an outcome dated before its experiment was created."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.evaluation.helpers import T0, add_experiment
from tests.support.keys import bearer


@pytest.fixture
def setup(v2app: Flask) -> dict[str, Any]:
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    exp = add_experiment(v2app.extensions["abvoc"].db)
    made = client.post(f"/v1/experiments/{exp}/metrics", headers=admin,
                       json={"name": "secret_revenue_metric", "kind": "mean",
                             "direction": "higher", "combine": "sum"})
    assert made.status_code == 201, made.get_json()
    return {"client": client, "admin": admin, "key": bearer(v2app, "outcome"), "exp": exp}


def _post(setup: dict[str, Any], who: str, **body: Any) -> Any:
    return setup["client"].post("/v1/outcomes", headers=setup[who], json={
        "unit_id": "never-seen-unit", "experiment_id": setup["exp"], **body})


def test_an_outcome_key_is_not_told_the_metric_names(setup: dict[str, Any]) -> None:
    refused = _post(setup, "key", metric="x", value=1)
    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert "secret_revenue_metric" not in error
    assert "'x' is not defined" in error and f"/v1/experiments/{setup['exp']}/metrics" in error


def test_an_admin_key_is_told_the_metric_names(setup: dict[str, Any]) -> None:
    refused = _post(setup, "admin", metric="x", value=1)
    assert refused.status_code == 400
    assert "['secret_revenue_metric']" in refused.get_json()["error"]


@pytest.mark.parametrize("when", ["1970-01-01T00:00:00Z", "2026-11-20T10:14:59Z",
                                  "2026-11-20T11:14:59+01:00"])
def test_an_outcome_from_before_the_experiment_is_refused(setup: dict[str, Any],
                                                          when: str) -> None:
    refused = _post(setup, "key", metric="secret_revenue_metric", value=1e15, observed_at=when)
    assert refused.status_code == 400, refused.get_json()
    error = refused.get_json()["error"]
    assert "'observed_at'" in error and T0.isoformat() in error


def test_an_outcome_from_after_the_experiment_began_is_accepted(setup: dict[str, Any]) -> None:
    at_start = _post(setup, "key", metric="secret_revenue_metric", value=2,
                     observed_at="2026-11-20T10:15:00Z")
    assert at_start.status_code == 202, at_start.get_json()
