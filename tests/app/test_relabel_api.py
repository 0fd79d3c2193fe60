"""The relabel API's refusals (scopes, bad bodies, leases), the image a /v1/predict customer sent
shown to the annotator as PNG, and the bound on kept inputs (retention, held by items)."""

from __future__ import annotations

import base64
import io
from datetime import timedelta

import numpy as np
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select

from core.store.db import utcnow
from core.store.models import PredictionInput, RelabelItem
from core.store.retention import prune_inputs
from tests.app.conftest import _key
from tests.support.kept_inputs import keep_input
from tests.support.v2 import drain


def jpeg() -> bytes:
    pixels = np.full((40, 60), 255, np.uint8)
    pixels[15:25, 10:50] = 0
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


def test_the_customers_image_reaches_the_annotator(app: Flask, client: FlaskClient,
                                                   admin: dict[str, str]) -> None:
    annotator = _key(app, "annotate")
    client.put("/v1/relabel/rules", headers=admin, json={"audit_rate": 1.0})
    data = jpeg()
    answer = client.post("/v1/predict", headers=admin, json={
        "image_base64": base64.b64encode(data).decode(), "unit_id": "u1"})
    assert answer.status_code == 200, answer.get_json()
    drain(app, 1)
    item = client.post("/v1/relabel/claim", headers=annotator).get_json()["item"]
    assert item["prediction_id"] == answer.get_json()["prediction_id"]
    assert item["reasons"] == ["audit"] and item["output_type"] == "latex"
    shown = base64.b64decode(item["input"]["data_base64"])
    assert shown.startswith(b"\x89PNG") and item["input"]["media_type"] == "image/png"
    with Image.open(io.BytesIO(shown)) as png, Image.open(io.BytesIO(data)) as original:
        assert png.size == original.size
    bad = client.post(f"/v1/relabel/items/{item['id']}/label", headers=annotator,
                      json={"label": "\\frac{x"})
    assert bad.status_code == 400 and "'label' is not valid LaTeX" in bad.get_json()["error"]
    deep = client.post(f"/v1/relabel/items/{item['id']}/label", headers=annotator,
                       json={"label": "{" * 1000 + "x" + "}" * 1000})  # once a 500, yet stored
    assert deep.status_code == 400 and "nested more than 64" in deep.get_json()["error"]
    assert client.get(f"/v1/relabel/items/{item['id']}", headers=annotator).get_json()[
        "status"] != "done"
    good = client.post(f"/v1/relabel/items/{item['id']}/label", headers=annotator,
                       json={"label": "x^{2}"})
    assert good.status_code == 200 and good.get_json()["status"] == "done"


def test_refusals(app: Flask, client: FlaskClient, admin: dict[str, str],
                  predictor: dict[str, str]) -> None:
    annotator = _key(app, "annotate")
    assert client.post("/v1/relabel/claim").status_code == 401
    assert client.post("/v1/relabel/claim", headers=predictor).status_code == 403
    assert client.get("/v1/relabel/rules", headers=annotator).status_code == 403
    assert client.post("/v1/relabel/items/1/resolve", headers=annotator,
                       json={"label": "x"}).status_code == 403
    for body, fragment in (({"queue": 5}, "'queue'"), ({"lease_s": 0}, "'lease_s'"),
                           ({"lease_s": True}, "'lease_s'"), ({"other": 1}, "unknown"),
                           ([1], "JSON object")):
        response = client.post("/v1/relabel/claim", headers=annotator, json=body)
        assert response.status_code == 400 and fragment in response.get_json()["error"], body
    assert client.post("/v1/relabel/claim", headers=annotator).get_json() == {"item": None}
    assert client.get("/v1/relabel/items/99", headers=annotator).status_code == 404
    assert client.post("/v1/relabel/items/99/label", headers=annotator,
                       json={"label": "x"}).status_code == 404
    assert client.post("/v1/relabel/items/99/label", headers=annotator,
                       json={}).status_code == 400
    assert client.get("/v1/relabel/items?status=nope", headers=annotator).status_code == 400
    assert client.get("/v1/relabel/items?limit=0", headers=annotator).status_code == 400
    for query, body, status in (("", {"audit_rate": 2}, 400), ("", {"quotas": {"x": 1}}, 400),
                                ("", {"nope": 1}, 400), ("?experiment_id=77", {}, 404),
                                ("?candidate=none", {}, 404),
                                ("?experiment_id=1&candidate=x", {}, 400)):
        response = client.put(f"/v1/relabel/rules{query}", headers=admin, json=body)
        assert response.status_code == status, (query, body, response.get_json())
    with app.extensions["abvoc"].db.session() as s:
        keep_input(s, "p", "h", kind="image")
        s.add(RelabelItem(queue="training", prediction_id="p", input_hash="h", reasons=[],
                          candidate="ocr-small-mixed", status="open", created_at=utcnow()))
    item = client.post("/v1/relabel/claim", headers=annotator).get_json()["item"]
    other = _key(app, "annotate")
    taken = client.post(f"/v1/relabel/items/{item['id']}/label", headers=other,
                        json={"label": "x"})
    assert taken.status_code == 409 and "not leased to you" in taken.get_json()["error"]
    flagged = client.post(f"/v1/relabel/items/{item['id']}/flag", headers=annotator,
                          json={"reason": "unreadable"})
    assert flagged.get_json()["status"] == "flagged"
    resolved = client.post(f"/v1/relabel/items/{item['id']}/resolve", headers=admin,
                           json={"label": "y"})
    assert resolved.get_json() == {"item_id": item["id"], "status": "done", "label": "y",
                                   "settled": []}  # no other queue held the input


def test_kept_inputs_are_pruned_unless_an_item_holds_them(app: Flask) -> None:
    db = app.extensions["abvoc"].db
    old = utcnow() - timedelta(hours=100)
    with db.session() as s:
        for i in range(3):
            s.add(PredictionInput(prediction_id=f"p{i}", input_hash=f"h{i}", kind="image",
                                  data=b"x", created_at=old))
        s.add(PredictionInput(prediction_id="new", input_hash="hn", kind="image", data=b"x",
                              created_at=utcnow()))
        s.add(RelabelItem(queue="training", prediction_id="p1", input_hash="h1", reasons=[],
                          status="open", created_at=utcnow()))
    assert prune_inputs(db, 72) == 2
    with db.session() as s:
        left = set(s.scalars(select(PredictionInput.prediction_id)))
        assert left == {"p1", "new"}
        assert s.scalar(select(func.count()).select_from(PredictionInput)) == 2


def test_unknown_queue_names_are_a_400_that_lists_the_queues(app: Flask, client: FlaskClient,
                                                             admin: dict[str, str]) -> None:
    """Claim, listing and agreement take the queue check of core.relabel: a mistyped queue is
    refused with the valid names (it used to read as an empty queue), and nothing is leased."""
    annotator = _key(app, "annotate")
    with app.extensions["abvoc"].db.session() as s:
        keep_input(s, "p", "h", kind="image")
        s.add(RelabelItem(queue="verification", prediction_id="p", input_hash="h", reasons=[],
                          candidate="ocr-small-mixed", status="open", created_at=utcnow()))
    for method, url, body in (
            ("post", "/v1/relabel/claim", {"queue": "verfication"}),
            ("post", "/v1/relabel/claim", {"queue": "stage:"}),
            ("get", "/v1/relabel/items?status=open&queue=verfication", None),
            ("get", "/v1/relabel/items?queue=default", None),
            ("get", "/v1/relabel/agreement?queue=bogus", None)):
        response = getattr(client, method)(url, headers=annotator, json=body)
        assert response.status_code == 400, (url, body, response.get_json())
        error = response.get_json()["error"]
        assert "is not a queue" in error and "verification, training, offline-test" in error \
            and "stage:<stage>" in error, error
    with app.extensions["abvoc"].db.reading() as s:
        assert s.scalars(select(RelabelItem.status)).all() == ["open"]
    listed = client.get("/v1/relabel/items?status=open&queue=verification", headers=admin)
    assert [i["queue"] for i in listed.get_json()["items"]] == ["verification"]
    assert client.get("/v1/relabel/agreement?queue=stage:recognizer",
                      headers=annotator).status_code == 200
    claimed = client.post("/v1/relabel/claim", headers=annotator, json={"queue": "verification"})
    assert claimed.get_json()["item"]["queue"] == "verification"
