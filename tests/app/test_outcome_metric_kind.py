"""A metric's kind is fixed once its outcomes are accepted, not only once the worker stored them:
an outcome checked as a mean and still on its way to the worker must never land in a
proportion (its results then failed with a 500, for good). Outcomes observed at one instant
combine as `first` in the order they were accepted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask

import feedback.outcomes
from app import close_app, create_app
from app.auth import create_key
from core.settings import Settings
from core.store.models import ExperimentMetric, OutcomeUnitValue
from evaluation.metric_definitions import define_metric
from tests.evaluation.helpers import add_experiment

MEAN = {"name": "score", "kind": "mean", "direction": "higher", "combine": "max"}
PROPORTION = {**MEAN, "kind": "proportion"}


@pytest.fixture
def setup(settings: Settings) -> Iterator[dict[str, Any]]:
    app = create_app(settings, test_config={"TESTING": True, "ROUTER_REFRESH_S": 0.0})
    db = app.extensions["abvoc"].db
    exp = add_experiment(db)
    yield {"app": app, "db": db, "exp": exp,
           "admin": {"Authorization": f"Bearer {create_key(db, ['admin'])['key']}"},
           "outcome": {"Authorization": f"Bearer {create_key(db, ['outcome'])['key']}"}}
    close_app(app)


def _define(setup: dict[str, Any], spec: dict[str, Any]) -> Any:
    return setup["app"].test_client().post(f"/v1/experiments/{setup['exp']}/metrics",
                                           headers=setup["admin"], json=spec)


def _outcome(setup: dict[str, Any], value: Any, **extra: Any) -> Any:
    body = {"unit_id": "u1", "experiment_id": setup["exp"], "metric": "score", "value": value,
            **extra}
    return setup["app"].test_client().post("/v1/outcomes", headers=setup["outcome"], json=body)


def test_a_kind_cannot_change_while_accepted_outcomes_are_on_their_way(
        setup: dict[str, Any]) -> None:
    assert _define(setup, MEAN).status_code == 201
    assert _outcome(setup, 7).status_code == 202  # accepted; no worker has stored it
    changed = _define(setup, PROPORTION)
    assert changed.status_code == 409, changed.get_json()
    message = changed.get_json()["error"]
    assert "checked as mean" in message and "cannot become proportion" in message
    # The rest of a definition may still change.
    assert _define(setup, {**MEAN, "combine": "sum"}).status_code == 200


def test_a_kind_changed_between_the_check_and_the_write_refuses_the_value(
        setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The kind changes after the request checked 7 as a mean and before it is written (no
    outcome was accepted yet, so the change is allowed): the write reads the kind again."""
    assert _define(setup, MEAN).status_code == 201
    real = feedback.outcomes._existing

    def existing(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        # Another request's change, between this one's check and its write.
        assert define_metric(setup["db"], setup["exp"], PROPORTION)[0]["kind"] == "proportion"
        return found

    monkeypatch.setattr(feedback.outcomes, "_existing", existing)
    refused = _outcome(setup, 7)
    assert refused.status_code == 400, refused.get_json()
    assert "proportion" in refused.get_json()["error"]
    monkeypatch.setattr(feedback.outcomes, "_existing", real)
    assert _outcome(setup, 1).status_code == 202  # a value of the kind it now has


def test_results_show_a_proportion_holding_other_values_instead_of_failing(
        setup: dict[str, Any]) -> None:
    """A store whose metric changed kind before the guard saw accepted outcomes holds a mean's
    values under a proportion: the results say so for that metric, and still answer."""
    assert _define(setup, PROPORTION).status_code == 201
    db = setup["db"]
    with db.session() as s:
        for unit, value in (("u1", 7.0), ("u2", 3.0), ("u3", 1.0)):
            s.add(OutcomeUnitValue(experiment_id=setup["exp"], arm="control", metric="score",
                                   unit_id=unit, n=1, total=value, maximum=value,
                                   first_value=value, first_at=datetime.now(UTC),
                                   first_id=unit))
    answer = setup["app"].test_client().get(f"/v1/experiments/{setup['exp']}/results",
                                            headers=setup["admin"])
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    figures = answer.get_json()["outcomes"]["score"]["arms"]["control"]
    assert figures["units"] == 3 and figures["mean"] is None
    assert "2 unit value(s) are not 0 or 1" in figures["error"]


def test_outcomes_observed_at_one_instant_are_first_in_the_order_accepted(
        setup: dict[str, Any]) -> None:
    assert _define(setup, {**MEAN, "combine": "first"}).status_code == 201
    at = datetime.now(UTC).isoformat()
    ids = []
    for value in (64, 69, 50, 71):
        answer = _outcome(setup, value, observed_at=at)
        assert answer.status_code == 202
        ids.append(answer.get_json()["outcome_id"])
        time.sleep(0.002)  # ids order by the millisecond they were accepted in
    assert ids == sorted(ids), "the worker breaks a tie of observed_at by outcome id"


def _kind(app: Flask, exp: int) -> str:
    with app.extensions["abvoc"].db.session() as s:
        return s.get(ExperimentMetric, (exp, "score")).kind


def test_a_kind_with_no_outcomes_accepted_still_changes(setup: dict[str, Any]) -> None:
    assert _define(setup, MEAN).status_code == 201
    assert _define(setup, PROPORTION).status_code == 200
    assert _kind(setup["app"], setup["exp"]) == "proportion"
