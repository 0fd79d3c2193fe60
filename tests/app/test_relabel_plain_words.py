"""What the relabeling commands and routes say to people: `abvoc relabel queues` gives the
agreement as three-decimal shares (it printed 0.7049180327868853), and a route that takes no
fields says so when sent a body that is no JSON object (it said "send a JSON object with  ")."""

from __future__ import annotations

from click.testing import CliRunner
from flask import Flask

from app.cli import main
from core.settings import Settings
from core.store import Database
from feedback import annotation
from tests.app.test_one_lease_per_annotator import add_items as add_open_items
from tests.feedback.test_relabel_annotation import add_items
from tests.support.keys import bearer


def test_queues_give_agreement_as_shares(cli: CliRunner, settings: Settings) -> None:
    quiet = cli.invoke(main, ["relabel", "queues"])
    assert quiet.exit_code == 0 and "exact n/a, kappa n/a" in quiet.stdout, quiet.output
    with Database(settings.database_url) as db:
        ids = add_items(db, 3, labels_needed=2, corrected={i: "dog" for i in range(3)})
        for who, labels in (("a", ["dog", "dog", "owl"]), ("b", ["dog", "owl", "owl"])):
            while (item := annotation.claim(db, who)) is not None:
                annotation.submit(db, item["id"], who, labels[ids.index(item["id"])])
    text = cli.invoke(main, ["relabel", "queues"]).stdout
    assert "agreement: 3 items with two labels, exact 0.667, kappa 0.400" in text, text


def test_a_route_without_fields_names_no_empty_list(v2app: Flask) -> None:
    (item,) = add_open_items(v2app, 1)
    client = v2app.test_client()
    annotator = bearer(v2app, "annotate")
    assert client.post("/v1/relabel/claim", headers=annotator).status_code == 200
    refused = client.post(f"/v1/relabel/items/{item}/skip", headers=annotator, json=[])
    assert refused.status_code == 400
    message = refused.get_json()["error"]
    assert message == ("send a JSON object (or no body) (Content-Type: application/json)"), \
        message
    # A field sent to it: the action takes no body (it said "allowed: " and nothing after).
    unknown = client.post(f"/v1/relabel/items/{item}/skip", headers=annotator, json={"x": 1})
    assert unknown.status_code == 400
    assert unknown.get_json()["error"] == "unknown field(s) 'x': this action takes no body"
