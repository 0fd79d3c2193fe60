"""An annotator holds one live lease at most: claiming again (with any lease_s, any queue)
returns the item already held with its lease as it was, so one key cannot lease the whole queue
for an hour and leave the other annotators with nothing."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from core.store.db import utcnow
from core.store.models import RelabelItem
from tests.support.kept_inputs import keep_input
from tests.support.keys import bearer


def add_items(app: Flask, n: int, queue: str = "training") -> list[int]:
    """`n` open items of `queue`, each with its input kept (as the service keeps it)."""
    with app.extensions["abvoc"].db.session() as s:
        items = []
        for i in range(n):
            pid = f"{queue}-p{i}"
            keep_input(s, pid, f"h-{pid}")
            items.append(RelabelItem(queue=queue, prediction_id=pid, input_hash=f"h-{pid}",
                                     candidate="cand-a", reasons=["audit"], priority=1.0,
                                     status="open", labels_needed=1, created_at=utcnow()))
        s.add_all(items)
        s.flush()
        return [int(i.id) for i in items]


def test_one_key_cannot_hoard_the_queue(v2app: Flask) -> None:
    add_items(v2app, 5)
    client = v2app.test_client()
    hoarder, other = bearer(v2app, "annotate", name="hoarder"), bearer(v2app, "annotate")
    first = client.post("/v1/relabel/claim", headers=hoarder, json={"lease_s": 600})
    assert first.status_code == 200, first.get_json()
    held = first.get_json()["item"]
    # A time with its offset, as every other time the API gives (SQLite hands them back naive).
    assert held["lease"]["until"].endswith("+00:00"), held["lease"]
    for _ in range(10):
        again = client.post("/v1/relabel/claim", headers=hoarder, json={"lease_s": 3600})
        assert again.status_code == 200
        assert again.get_json()["item"]["id"] == held["id"]
        # The same lease: not extended to the new lease_s.
        assert again.get_json()["item"]["lease"] == held["lease"]
    with v2app.extensions["abvoc"].db.reading() as s:
        owners = s.scalars(select(RelabelItem.lease_owner).where(
            RelabelItem.status == "leased")).all()
    assert len(owners) == 1
    theirs = client.post("/v1/relabel/claim", headers=other).get_json()["item"]
    assert theirs is not None and theirs["id"] != held["id"]


def test_the_held_item_comes_back_whatever_queue_is_asked(v2app: Flask) -> None:
    add_items(v2app, 2, "training")
    add_items(v2app, 2, "verification")
    client = v2app.test_client()
    annotator = bearer(v2app, "annotate")
    held = client.post("/v1/relabel/claim", headers=annotator,
                       json={"queue": "training"}).get_json()["item"]
    other_queue = client.post("/v1/relabel/claim", headers=annotator,
                              json={"queue": "verification"}).get_json()["item"]
    assert other_queue["id"] == held["id"]


def test_after_a_skip_the_next_claim_is_a_new_item(v2app: Flask) -> None:
    add_items(v2app, 3)
    client = v2app.test_client()
    annotator = bearer(v2app, "annotate")
    held = client.post("/v1/relabel/claim", headers=annotator).get_json()["item"]
    skipped = client.post(f"/v1/relabel/items/{held['id']}/skip", headers=annotator)
    assert skipped.status_code == 200, skipped.get_json()
    nxt = client.post("/v1/relabel/claim", headers=annotator).get_json()["item"]
    assert nxt is not None and nxt["id"] != held["id"]
