"""POST /v1/outcomes and the metric definitions (API and CLI): hostile input gets a 400 that
says what to fix with nothing stored; receipts and ids are checked; the same outcome is
accepted once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import func, select

from app.cli import main
from core import receipts
from core.store.db import utcnow
from core.store.models import OutboxEvent, OutcomeRequest, ServedPrediction
from tests.evaluation.helpers import add_experiment
from tests.support.keys import bearer


def served(app: Flask, pid: str, experiment_id: int | None, arm: str | None = "control",
           excluded: str | None = None) -> dict:
    """A prediction in the API's ledger, as serving writes it, and its receipt."""
    with app.extensions["abvoc"].db.session() as s:
        s.add(ServedPrediction(prediction_id=pid, candidate="cand-a", arm=arm,
                               experiment_id=experiment_id, created_at=utcnow(),
                               excluded=excluded))
    return {"prediction_id": pid, "receipt": receipts.sign("test-secret", pid)}


def stored(app: Flask) -> tuple[int, int]:
    with app.extensions["abvoc"].db.session() as s:
        # Accepted outcomes: one row each (a request's other identities carry an alias id).
        return (s.scalar(select(func.count()).select_from(OutcomeRequest).where(
                    OutcomeRequest.outcome_id.not_like("%/%"))) or 0,
                s.scalar(select(func.count()).select_from(OutboxEvent)) or 0)


@pytest.fixture
def setup(v2app: Flask) -> dict[str, Any]:
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    exp = add_experiment(v2app.extensions["abvoc"].db)
    for body in ({"name": "won", "kind": "proportion", "direction": "higher", "primary": True},
                 {"name": "score", "kind": "mean", "direction": "higher", "combine": "sum"},
                 {"name": "ctr", "kind": "ratio", "direction": "higher", "numerator": "won",
                  "denominator": "score"}):
        made = client.post(f"/v1/experiments/{exp}/metrics", headers=admin, json=body)
        assert made.status_code == 201, made.get_json()
    return {"client": client, "admin": admin, "exp": exp, "key": bearer(v2app, "outcome"),
            "pred": served(v2app, "p1", exp)}


def post(setup: dict[str, Any], body: Any, **headers: str) -> Any:
    return setup["client"].post("/v1/outcomes", headers={**setup["key"], **headers}, json=body)


def hostile(setup: dict[str, Any]) -> list[tuple[Any, str]]:
    exp, pred = setup["exp"], setup["pred"]
    unit = {"unit_id": "u1", "experiment_id": exp}
    return [
        ({**unit, "metric": "nope", "value": 1}, "not defined on experiment"),
        ({**unit, "metric": "won", "value": 0.5}, "0, 1, true or false"),
        ({**unit, "metric": "won", "value": "1"}, "0, 1, true or false"),
        ({**unit, "metric": "score", "value": True}, "finite number"),
        ({**unit, "metric": "score", "value": "3"}, "finite number"),
        ({**unit, "metric": "ctr", "value": 1}, "is a ratio"),
        ({**unit, **pred, "metric": "won", "value": 1}, "not both"),
        ({"metric": "won", "value": 1}, "not both and not neither"),
        ({"prediction_id": "p1", "metric": "won", "value": 1}, "go together"),
        ({**unit, "metric": "won"}, "'value' is required"),
        ({**unit, "value": 1}, "'metric' is required"),
        ({**unit, "metric": "won", "value": 1, "extra": 1}, "unknown field(s) 'extra'"),
        ({**unit, "metric": "won", "value": 1, "observed_at": "2026-11-30T08:00:00"},
         "RFC 3339"),
        ({**unit, "metric": "won", "value": 1, "observed_at": "2026-11-30"}, "RFC 3339"),
        ({**unit, "metric": "won", "value": 1, "observed_at": "2026-02-30T08:00:00Z"},
         "not a real time"),
        ({**unit, "metric": "won", "value": 1, "observed_at": "2999-01-01T00:00:00Z"},
         "future"),
        ({**unit, "metric": "won", "value": 1, "event_id": "a b"}, "event_id"),
        ({"unit_id": "u1", "experiment_id": "1", "metric": "won", "value": 1}, "experiment_id"),
        ({"unit_id": "u1", "experiment_id": True, "metric": "won", "value": 1},
         "experiment_id"),
        ({"unit_id": "", "experiment_id": exp, "metric": "won", "value": 1}, "unit_id"),
        ({"unit_id": "u" * 201, "experiment_id": exp, "metric": "won", "value": 1}, "limit"),
        ({**unit, "metric": "won", "value": 1e300}, "2^53"),
        ([1, 2], "JSON object"),
    ]


def test_hostile_outcomes_get_400_and_nothing_is_stored(setup: dict[str, Any]) -> None:
    for body, fragment in hostile(setup):
        response = post(setup, body)
        assert response.status_code == 400, (body, response.get_json())
        assert fragment in response.get_json()["error"], (body, response.get_json())
    raw = setup["client"].post("/v1/outcomes", headers=setup["key"], data="{",
                               content_type="application/json")
    assert raw.status_code == 400
    app = setup["client"].application
    assert stored(app) == (0, 0)


def test_receipts_ids_and_scopes_are_checked(setup: dict[str, Any]) -> None:
    app = setup["client"].application
    forged = {**setup["pred"], "receipt": "0" * 64, "metric": "won", "value": 1}
    assert post(setup, forged).status_code == 403
    ghost = {"prediction_id": "ghost", "receipt": receipts.sign("test-secret", "ghost"),
             "metric": "won", "value": 1}
    assert post(setup, ghost).status_code == 404
    missing = post(setup, {"unit_id": "u", "experiment_id": 999, "metric": "won", "value": 1})
    assert missing.status_code == 404 and "does not exist" in missing.get_json()["error"]
    outside = {**served(app, "p-out", None, None), "metric": "won", "value": 1}
    assert "not served in an experiment" in post(setup, outside).get_json()["error"]
    # Served while the experiment was paused (or to a forced arm): the ledger keeps where it
    # went, the results never count it, so its outcome was accepted and then lost.
    kept_out = post(setup, {**served(app, "p-paused", setup["exp"], excluded="paused"),
                            "metric": "won", "value": 1})
    assert kept_out.status_code == 400
    assert f"kept out of experiment {setup['exp']}'s results (paused)" in \
        kept_out.get_json()["error"]
    denied = setup["client"].post("/v1/outcomes", headers=bearer(app, "predict"),
                                  json={**setup["pred"], "metric": "won", "value": 1})
    assert denied.status_code == 403
    assert stored(app) == (0, 0)


def test_the_same_outcome_is_accepted_once(setup: dict[str, Any]) -> None:
    app = setup["client"].application
    body = {**setup["pred"], "metric": "won", "value": True,
            "observed_at": "2026-11-29T10:00:00+01:00"}
    first = post(setup, body)
    assert first.status_code == 202, first.get_json()
    again = post(setup, {**body, "value": 1})  # the same value, written another way
    # The first answer's shape, experiment included.
    assert again.get_json() == {**first.get_json(), "duplicate": True}
    keyed = post(setup, {**body, "value": 0}, **{"Idempotency-Key": "k1"})
    assert post(setup, {**body, "value": 0}, **{"Idempotency-Key": "k1"}).get_json()[
        "outcome_id"] == keyed.get_json()["outcome_id"]
    conflict = post(setup, {**body, "value": 1}, **{"Idempotency-Key": "k1"})
    assert conflict.status_code == 409
    unit = {"unit_id": "u1", "experiment_id": setup["exp"], "metric": "score", "value": 2}
    one = post(setup, {**unit, "event_id": "game-1"})
    assert post(setup, {**unit, "event_id": "game-1"}).get_json()["duplicate"] is True
    assert post(setup, {**unit, "event_id": "game-2"}).get_json()["duplicate"] is False
    assert one.get_json()["experiment_id"] == setup["exp"]
    assert stored(app) == (4, 4)
    with app.extensions["abvoc"].db.session() as s:
        events = [json.loads(p) for p in s.scalars(select(OutboxEvent.payload))]
    assert {e["value"] for e in events} == {0.0, 1.0, 2.0}
    assert events[0]["observed_at"] == "2026-11-29T09:00:00+00:00"  # kept in UTC
    assert {e["event_type"] for e in events} == {"OutcomeRecorded"}


def test_minus_zero_is_the_same_outcome_as_zero(setup: dict[str, Any]) -> None:
    """A keyless body is found again by its value as a number: 0, 0.0, false and -0.0 alike."""
    body = {"unit_id": "u1", "experiment_id": setup["exp"], "metric": "won"}
    first = post(setup, {**body, "value": 0})
    assert first.status_code == 202, first.get_json()
    for value in (0.0, False, -0.0):
        again = post(setup, {**body, "value": value})
        assert again.get_json() == {**first.get_json(), "duplicate": True}, value
    assert stored(setup["client"].application) == (1, 1)


def test_metric_definitions_api(setup: dict[str, Any]) -> None:
    client, admin, exp = setup["client"], setup["admin"], setup["exp"]
    url = f"/v1/experiments/{exp}/metrics"
    listed = client.get(url, headers=admin).get_json()["metrics"]
    assert [m["name"] for m in listed] == ["ctr", "score", "won"]
    # Reread from the store, times keep their UTC offset, as a fresh answer's do.
    assert all(m[k].endswith("+00:00") for m in listed for k in ("created_at", "updated_at"))
    changed = client.post(url, headers=admin, json={"name": "score", "kind": "mean",
                                                    "direction": "lower", "guardrail": 4})
    assert changed.status_code == 200
    assert changed.get_json()["combine"] == "mean" and changed.get_json()["guardrail"] == 4.0
    second = client.post(url, headers=admin, json={"name": "x", "kind": "mean",
                                                   "direction": "higher", "primary": True})
    assert second.status_code == 409 and "already the primary" in second.get_json()["error"]
    assert client.post(url, headers=admin, json={"name": "x"}).status_code == 400
    unparted = client.post(url, headers=admin, json={"name": "rpu", "kind": "ratio",
                                                     "direction": "higher"})
    assert unparted.status_code == 400 and unparted.get_json()["error"].startswith(
        "a ratio metric needs both 'numerator' and 'denominator' ('numerator' and "
        "'denominator' not given)")
    assert client.post(url, headers=admin, data="[]",
                       content_type="application/json").status_code == 400
    assert client.get("/v1/experiments/999/metrics", headers=admin).status_code == 404
    assert client.get(url, headers=setup["key"]).status_code == 403


def test_metrics_cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.store import schema
    from core.store.db import Database

    monkeypatch.setenv("ABVOC_DATABASE_URL", database_url)
    with Database(database_url) as db:
        schema.upgrade(db)
        exp = add_experiment(db)
    runner = CliRunner()
    made = runner.invoke(main, ["metrics", "define", str(exp), "--name", "won", "--kind",
                                "proportion", "--direction", "higher", "--primary"])
    assert made.exit_code == 0 and "won: proportion (first), higher is better [primary]" \
        in made.output, made.output
    runner.invoke(main, ["metrics", "define", str(exp), "--name", "clicks", "--kind", "mean",
                         "--direction", "higher", "--combine", "sum"])
    ratio = runner.invoke(main, ["metrics", "define", str(exp), "--name", "ctr", "--kind",
                                 "ratio", "--direction", "higher", "--numerator", "clicks",
                                 "--denominator", "won", "--guardrail", "0.1", "--json"])
    assert json.loads(ratio.output)["numerator"] == "clicks"
    listed = runner.invoke(main, ["metrics", "list", str(exp)]).output
    assert "ctr: ratio (clicks/won), higher is better, guardrail 0.1" in listed
    bad = runner.invoke(main, ["metrics", "define", str(exp), "--name", "x", "--kind",
                               "proportion", "--direction", "higher", "--combine", "sum"])
    assert bad.exit_code != 0 and "first or max" in bad.output
    # A ratio without its parts is told it needs both, not how a name is spelt.
    unparted = runner.invoke(main, ["metrics", "define", str(exp), "--name", "rpu", "--kind",
                                    "ratio", "--direction", "higher", "--numerator", "clicks"])
    assert unparted.exit_code != 0
    assert "needs both 'numerator' and 'denominator' ('denominator' not given)" in \
        unparted.output, unparted.output
    assert runner.invoke(main, ["metrics", "list", "99"]).exit_code != 0
