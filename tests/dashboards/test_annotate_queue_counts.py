"""The Annotate page's queue dropdown counts what a claim by the logged-in annotator could get:
an item whose lease ran out is claimable again (it read "0 open" of a queue with items to
claim), and an item the annotator skipped or labeled is never offered to them again."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from app.auth import create_key
from core.store.db import utcnow
from core.store.models import RelabelItem
from dashboards.pages import annotate
from tests.dashboards.annotation_seed import QUEUE, seed_queue
from tests.dashboards.test_dashboard_auth import ORIGIN, _token, login

BODY = {"output": "ann-queue.options", "outputs": {"id": "ann-queue", "property": "options"},
        "inputs": [{"id": "ann-message", "property": "children", "value": "x"}],
        "changedPropIds": ["ann-message.children"]}


def _labels(client: FlaskClient) -> list[str]:
    """The dropdown's labels as the page's callback gives them to this client's session."""
    answer = client.post("/dashboard/_dash-update-component", json=BODY,
                         headers={**ORIGIN, "X-CSRFToken": _token(client)})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return [o["label"] for o in answer.get_json()["response"]["ann-queue"]["options"]]


def _annotator(app: Flask, name: str) -> tuple[FlaskClient, str]:
    """A logged-in client of a new annotate key, and the identity its labels are under."""
    made = create_key(app.extensions["abvoc"].db, ["annotate"], name=name)
    client = app.test_client()
    login(client, made["key"], next_="/dashboard/")
    return client, f"{name}:{made['prefix']}"


def test_the_queue_counts_are_what_the_annotator_can_claim(dash_app: Flask) -> None:
    db = dash_app.extensions["abvoc"].db
    seed_queue(db)  # three verification items
    alice, alice_id = _annotator(dash_app, "alice")
    bob, bob_id = _annotator(dash_app, "bob")
    held, _, _ = annotate.step(db, alice_id, "claim", QUEUE, None, None, None)
    assert held is not None
    with db.session() as s:  # alice's lease runs out: the item is claimable again
        s.execute(update(RelabelItem).where(RelabelItem.id == held["id"]).values(
            lease_until=utcnow() - timedelta(seconds=1)))
    assert f"{QUEUE} (3 open)" in _labels(bob)

    first, _, _ = annotate.step(db, bob_id, "claim", QUEUE, None, None, None)
    assert first is not None and first["id"] == held["id"]
    second, message, _ = annotate.step(db, bob_id, "skip", QUEUE, first, None, None)
    assert second is not None and second["id"] != first["id"], message
    # Bob holds one item and skipped another: one is left for him, two for alice.
    assert f"{QUEUE} (1 open)" in _labels(bob)
    assert f"{QUEUE} (2 open)" in _labels(alice)
    third, _, _ = annotate.step(db, bob_id, "skip", QUEUE, second, None, None)
    assert third is not None and f"{QUEUE} (0 open)" in _labels(bob)
    assert annotate.step(db, bob_id, "skip", QUEUE, third, None, None)[0] is None
