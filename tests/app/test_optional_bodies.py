"""Routes whose JSON body may be left out (a claim, an experiment's actions) read a body sent
as a form (curl's -d without a Content-Type) as a mistake, not as no body: read as none, a
claim's queue was dropped and an item of another queue leased, with no error."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from core.store.models import RelabelItem
from tests.app.test_one_lease_per_annotator import add_items
from tests.evaluation.helpers import add_experiment
from tests.support.keys import bearer

FORM = "application/x-www-form-urlencoded"


def _leased(app: Flask) -> int:
    with app.extensions["abvoc"].db.reading() as s:
        return len(s.scalars(select(RelabelItem.id).where(RelabelItem.status == "leased")).all())


def test_a_claim_sent_as_a_form_is_refused_not_read_as_no_body(v2app: Flask) -> None:
    add_items(v2app, 2, "verification")
    add_items(v2app, 2, "offline-test")
    client, annotator = v2app.test_client(), bearer(v2app, "annotate")
    for body in ('{"queue":"offline-test"}', '{"queue":"no-such-queue"}'):
        sent = client.post("/v1/relabel/claim", headers=annotator, data=body, content_type=FORM)
        assert sent.status_code == 400, sent.get_json()
        assert "Content-Type: application/json" in sent.get_json()["error"]
    assert _leased(v2app) == 0  # nothing leased on a refusal
    asked = client.post("/v1/relabel/claim", headers=annotator, json={"queue": "offline-test"})
    assert asked.status_code == 200 and asked.get_json()["item"]["queue"] == "offline-test"
    # No body at all is still the default claim.
    other = bearer(v2app, "annotate")
    assert client.post("/v1/relabel/claim", headers=other).status_code == 200


def test_an_experiment_action_sent_as_a_form_is_refused(v2app: Flask) -> None:
    exp = add_experiment(v2app.extensions["abvoc"].db)
    client, admin = v2app.test_client(), bearer(v2app, "admin")
    sent = client.post(f"/v1/experiments/{exp}/kill", headers=admin,
                       data='{"reason":"broken"}', content_type=FORM)
    assert sent.status_code == 400, sent.get_json()
    assert client.get(f"/v1/experiments/{exp}", headers=admin).get_json()["status"] != "killed"


def test_a_query_parameter_a_relabel_route_does_not_read_is_refused(v2app: Flask) -> None:
    """A typo (`queu=training`) was ignored: the items in review of every queue came back."""
    client, annotator = v2app.test_client(), bearer(v2app, "annotate")
    admin = bearer(v2app, "admin")
    for url, headers in (("/v1/relabel/items?queu=training", annotator),
                         ("/v1/relabel/items?queue=training&queue=verification", annotator),
                         ("/v1/relabel/agreement?queue=training&x=1", annotator),
                         ("/v1/relabel/rules?experiment=1", admin)):
        answer = client.get(url, headers=headers)
        assert answer.status_code == 400, (url, answer.get_json())
        assert "query parameter" in answer.get_json()["error"]
    assert client.get("/v1/relabel/items?queue=training&limit=5",
                      headers=annotator).status_code == 200
