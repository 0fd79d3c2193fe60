"""An Idempotency-Key belongs to the API key that sent it: another client using the same header
value for another correction or outcome is a new request (not a 409 that tells it the value was
taken), while the same client reusing it is a duplicate, or a 409 with another body."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from core import receipts
from core.store.db import utcnow
from core.store.models import CorrectionRequest, OutboxEvent, ServedPrediction
from core.store.outcome_models import OutcomeRequest
from tests.evaluation.helpers import add_experiment
from tests.support.keys import bearer


def served(app: Flask, pid: str, experiment_id: int | None = None) -> dict[str, str]:
    """A prediction in the API's ledger, as serving writes it, and its receipt."""
    with app.extensions["abvoc"].db.session() as s:
        s.add(ServedPrediction(prediction_id=pid, candidate="cand-a", arm="control",
                               experiment_id=experiment_id, created_at=utcnow()))
    return {"prediction_id": pid, "receipt": receipts.sign("test-secret", pid)}


@pytest.fixture
def setup(v2app: Flask) -> dict[str, Any]:
    client = v2app.test_client()
    exp = add_experiment(v2app.extensions["abvoc"].db)
    made = client.post(f"/v1/experiments/{exp}/metrics", headers=bearer(v2app, "admin"),
                       json={"name": "won", "kind": "proportion", "direction": "higher"})
    assert made.status_code == 201, made.get_json()
    return {"client": client, "exp": exp,
            "a": served(v2app, "p-a", exp), "b": served(v2app, "p-b", exp),
            "victim": bearer(v2app, "correct", "outcome", name="victim"),
            "other": bearer(v2app, "correct", "outcome", name="other")}


def _send(setup: dict[str, Any], path: str, who: str, body: dict[str, Any]) -> Any:
    headers = {**setup[who], "Idempotency-Key": "order-1"}
    return setup["client"].post(path, headers=headers, json=body)


def _correction(setup: dict[str, Any], pred: str, output: str = "x+1") -> dict[str, Any]:
    return {**setup[pred], "corrected_output": output}


def _outcome(setup: dict[str, Any], pred: str, value: int = 1) -> dict[str, Any]:
    return {**setup[pred], "metric": "won", "value": value}


@pytest.mark.parametrize("path,make,id_field", [
    ("/v1/corrections", _correction, "correction_id"),
    ("/v1/outcomes", _outcome, "outcome_id"),
])
def test_two_api_keys_may_use_the_same_idempotency_key(setup: dict[str, Any], path: str,
                                                       make: Any, id_field: str) -> None:
    first = _send(setup, path, "victim", make(setup, "a"))
    second = _send(setup, path, "other", make(setup, "b"))
    assert first.status_code == 202, first.get_json()
    assert second.status_code == 202, second.get_json()
    assert first.get_json()["duplicate"] is False
    assert second.get_json()["duplicate"] is False
    assert first.get_json()[id_field] != second.get_json()[id_field]


@pytest.mark.parametrize("path,make,id_field", [
    ("/v1/corrections", _correction, "correction_id"),
    ("/v1/outcomes", _outcome, "outcome_id"),
])
def test_the_same_api_key_reusing_its_key_is_a_duplicate_or_a_conflict(
        setup: dict[str, Any], path: str, make: Any, id_field: str) -> None:
    first = _send(setup, path, "victim", make(setup, "a"))
    again = _send(setup, path, "victim", make(setup, "a"))
    assert first.status_code == again.status_code == 202
    assert again.get_json()["duplicate"] is True
    assert again.get_json()[id_field] == first.get_json()[id_field]
    other_body = _send(setup, path, "victim", make(setup, "b"))
    assert other_body.status_code == 409, other_body.get_json()
    # The other client's request with that value is still its own, new one.
    assert _send(setup, path, "other", make(setup, "b")).get_json()["duplicate"] is False


def test_an_outcome_event_id_stays_global(setup: dict[str, Any]) -> None:
    """event_id names the outcome itself: another key sending it again is the same outcome."""
    body = {**_outcome(setup, "a"), "event_id": "ev-1"}
    first = setup["client"].post("/v1/outcomes", headers=setup["victim"], json=body)
    again = setup["client"].post("/v1/outcomes", headers=setup["other"], json=body)
    assert first.status_code == again.status_code == 202
    assert again.get_json() == first.get_json() | {"duplicate": True}


@pytest.mark.parametrize("path,make,id_field,model", [
    ("/v1/corrections", _correction, "correction_id", CorrectionRequest),
    ("/v1/outcomes", _outcome, "outcome_id", OutcomeRequest),
])
def test_a_retry_across_the_upgrade_that_scoped_keys_counts_once(
        setup: dict[str, Any], v2app: Flask, path: str, make: Any, id_field: str,
        model: type) -> None:
    """A store written before keys were scoped holds the raw header, one row per request."""
    first = _send(setup, path, "victim", make(setup, "a"))
    assert first.status_code == 202
    db = v2app.extensions["abvoc"].db
    with db.session() as s:  # the row as the older code kept it
        rows = s.scalars(select(model)).all()
        for extra in rows[1:]:
            s.delete(extra)
        s.execute(update(model).values(idempotency_key="order-1"))
    with db.reading() as s:
        events = s.scalar(select(func.count()).select_from(OutboxEvent))
    again = _send(setup, path, "victim", make(setup, "a"))
    assert again.status_code == 202 and again.get_json()["duplicate"] is True
    assert again.get_json()[id_field] == first.get_json()[id_field]
    with db.reading() as s:
        assert s.scalar(select(func.count()).select_from(OutboxEvent)) == events
    # Another body under that raw key: a new request, not a 409 telling of someone's key.
    other = _send(setup, path, "other", make(setup, "b"))
    assert other.status_code == 202 and other.get_json()["duplicate"] is False
