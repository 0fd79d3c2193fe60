"""POST /v1/outcomes accepts an outcome once per Idempotency-Key or event_id, and a request with
neither once per identical body: a request matching an earlier one by any of its identities is
that one, also when the two race; a new key is a new outcome, whatever its body."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

import feedback.outcomes
from app import close_app, create_app
from app.auth import create_key
from core.settings import Settings
from core.store.models import OutboxEvent
from tests.evaluation.helpers import add_experiment


@pytest.fixture
def setup(settings: Settings) -> Iterator[dict[str, Any]]:
    app = create_app(settings, test_config={"TESTING": True, "ROUTER_REFRESH_S": 0.0})
    db = app.extensions["abvoc"].db
    client = app.test_client()
    admin = {"Authorization": f"Bearer {create_key(db, ['admin'])['key']}"}
    exp = add_experiment(db)
    made = client.post(f"/v1/experiments/{exp}/metrics", headers=admin,
                       json={"name": "clicks", "kind": "mean", "direction": "higher",
                             "combine": "sum"})
    assert made.status_code == 201, made.get_json()
    yield {"app": app, "exp": exp,
           "key": {"Authorization": f"Bearer {create_key(db, ['outcome'])['key']}"}}
    close_app(app)


def _post(setup: dict[str, Any], body: dict[str, Any], key: str | None = None) -> Any:
    headers = {**setup["key"], **({"Idempotency-Key": key} if key else {})}
    return setup["app"].test_client().post("/v1/outcomes", headers=headers, json=body)


def _events(app: Flask) -> int:
    with app.extensions["abvoc"].db.session() as s:
        return s.scalar(select(func.count()).select_from(OutboxEvent)) or 0


def test_an_event_id_or_a_body_seen_before_is_a_duplicate_whatever_the_key(
        setup: dict[str, Any]) -> None:
    body = {"unit_id": "u1", "experiment_id": setup["exp"], "metric": "clicks", "value": 1000,
            "event_id": "purchase-777"}
    first = _post(setup, body, "K1")
    assert first.status_code == 202 and first.get_json()["duplicate"] is False
    for key in ("K2", None, "K1"):
        again = _post(setup, body, key)
        assert again.status_code == 202
        assert again.get_json() == {**first.get_json(), "duplicate": True}, key
    # The same key or event_id with another body is still a conflict.
    assert _post(setup, {**body, "value": 5}, "K1").status_code == 409
    assert _post(setup, {**body, "value": 5}).status_code == 409
    assert _post(setup, {**body, "value": 5}, "K9").status_code == 409
    # Without an event_id, a key says which outcome it is: the same key again is a retry, a
    # new key a new outcome of the same value (two purchases of one price are two).
    plain = {"unit_id": "u2", "experiment_id": setup["exp"], "metric": "clicks", "value": 3}
    one = _post(setup, plain, "K3").get_json()
    assert one["duplicate"] is False
    assert _post(setup, plain, "K3").get_json() == {**one, "duplicate": True}
    two = _post(setup, plain, "K4").get_json()
    assert two["duplicate"] is False and two["outcome_id"] != one["outcome_id"]
    # With neither, the body is the outcome's identity: a keyless retry counts once.
    three = _post(setup, plain).get_json()
    assert three["duplicate"] is False
    assert _post(setup, plain).get_json() == {**three, "duplicate": True}
    # A new event_id is a new outcome.
    assert _post(setup, {**body, "event_id": "purchase-778"}).get_json()["duplicate"] is False
    assert _events(setup["app"]) == 5


def test_two_racing_posts_of_one_outcome_under_two_keys_count_once(
        setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Both requests pass the lookup before either writes; the store decides."""
    body = {"unit_id": "u3", "experiment_id": setup["exp"], "metric": "clicks", "value": 7,
            "event_id": "order-1"}
    barrier = threading.Barrier(2, timeout=10)
    looked = threading.local()
    real = feedback.outcomes._existing

    def existing(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        if not getattr(looked, "once", False):
            looked.once = True
            barrier.wait()
        return found

    monkeypatch.setattr(feedback.outcomes, "_existing", existing)
    answers: list[Any] = [None, None]

    def send(i: int, key: str | None) -> None:
        answers[i] = _post(setup, body, key)

    threads = [threading.Thread(target=send, args=(i, k)) for i, k in enumerate(("R1", None))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [a.status_code for a in answers] == [202, 202]
    got = sorted(a.get_json()["duplicate"] for a in answers)
    assert got == [False, True]
    assert len({a.get_json()["outcome_id"] for a in answers}) == 1
    # The loser answers as the winner does, experiment included.
    assert len({a.get_json()["experiment_id"] for a in answers}) == 1
    assert _events(setup["app"]) == 1


def test_a_key_first_sent_on_a_repeat_is_kept_for_the_outcome_it_repeated(
        setup: dict[str, Any]) -> None:
    """Matched by its event_id, the repeat's new key was stored nowhere: that key with another
    body was then accepted as a new outcome, and a retry with only that key counted twice."""
    body = {"unit_id": "u1", "experiment_id": setup["exp"], "metric": "clicks", "value": 7,
            "event_id": "order-1"}
    first = _post(setup, body, "K1").get_json()
    assert _post(setup, body, "K2").get_json() == {**first, "duplicate": True}
    assert _post(setup, {**body, "event_id": "order-2"}, "K2").status_code == 409
    plain = {k: v for k, v in body.items() if k != "event_id"}
    assert _post(setup, plain, "K2").status_code == 409  # K2 names the event's outcome
    assert _post(setup, body, "K2").get_json() == {**first, "duplicate": True}
    assert _events(setup["app"]) == 1
