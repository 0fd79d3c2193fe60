"""A request's unit id may come in its body or the X-Abvoc-Unit-Id header, on /v1/predict and
/v2 alike: two different ids are a 400 naming both places (the body's was served and the
header's dropped unsaid), the same id in both is that unit, and nothing refused is recorded."""

from __future__ import annotations

import base64
import io

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core.store.models import OutboxEvent
from serving.images import encode_png
from tests.support.bundles import EXAMPLE
from tests.support.keys import bearer
from tests.support.v2 import experiment, flowers, infer_body, upload
from workloads.ocr.dataset import ONLINE_MIX, sample_requests

HEADER = "X-Abvoc-Unit-Id"


def _events(app: Flask) -> int:
    with app.extensions["abvoc"].db.session() as s:
        return s.scalar(select(func.count()).select_from(OutboxEvent)) or 0


def _image() -> str:
    return base64.b64encode(encode_png(next(sample_requests(1, ONLINE_MIX)).image)).decode()


def test_v1_predict_refuses_two_different_unit_ids(app: Flask, client: FlaskClient,
                                                   predictor: dict) -> None:
    image = _image()
    before = _events(app)
    two = client.post("/v1/predict", headers={**predictor, HEADER: "zz"},
                      json={"image_base64": image, "unit_id": "p"})
    assert two.status_code == 400, two.get_json()
    error = two.get_json()["error"]
    assert "'p' in 'unit_id'" in error and f"'zz' in the {HEADER} header" in error, error
    form = client.post("/v1/predict", headers={**predictor, HEADER: "zz"}, data={
        "image": (io.BytesIO(base64.b64decode(image)), "f.png"), "unit_id": "p"})
    assert form.status_code == 400 and "two different unit ids" in form.get_json()["error"]
    assert _events(app) == before
    for headers, unit in (({HEADER: "p"}, "p"), ({HEADER: "p"}, None), ({}, "p")):
        body = {"image_base64": image, **({"unit_id": unit} if unit else {})}
        same = client.post("/v1/predict", headers={**predictor, **headers}, json=body)
        assert same.status_code == 200, (headers, unit, same.get_json())


def test_v2_refuses_two_different_unit_ids(v2app: Flask) -> None:
    client = v2app.test_client()
    upload(client, bearer(v2app, "admin"), EXAMPLE)
    predictor = bearer(v2app, "predict")
    url = "/v2/models/default/infer"
    two = client.post(url, headers={**predictor, HEADER: "zz"},
                      json=infer_body(flowers(1)[:1], "p"))
    assert two.status_code == 400, two.get_json()
    error = two.get_json()["error"]
    assert "'p' in 'parameters.unit_id'" in error and f"'zz' in the {HEADER} header" in error
    assert _events(v2app) == 0
    same = client.post(url, headers={**predictor, HEADER: "p"},
                       json=infer_body(flowers(1)[:1], "p"))
    assert same.status_code == 200, same.get_json()


def test_a_blank_unit_id_is_refused_saying_what_to_send(app: Flask, client: FlaskClient,
                                                        admin: dict) -> None:
    """'' or spaces name no user or session, yet were served (every blank request one unit, ''
    as none): in the body, V2's parameters and the header alike, and for outcomes too."""
    image = _image()
    before = _events(app)
    sends = [dict(json={"image_base64": image, "unit_id": blank}) for blank in ("", " ", "\t")]
    sends += [dict(json={"image_base64": image}, headers={HEADER: "  "}),
              dict(data={"image": (io.BytesIO(base64.b64decode(image)), "f.png"),
                         "unit_id": ""})]
    for send in sends:
        answer = client.post("/v1/predict", **{**send, "headers": {**admin,
                                                                   **send.get("headers", {})}})
        assert answer.status_code == 400, (send.get("headers"), answer.get_json())
        error = answer.get_json()["error"]
        assert "is blank" in error and "leave it out on a scope whose experiment has unit " \
            "'request'" in error, error
    assert _events(app) == before
    exp = experiment(client, admin, "blank", "ocr-small-printed", "ocr-small-mixed")["id"]
    outcome = client.post("/v1/outcomes", headers=admin, json={
        "unit_id": " ", "experiment_id": exp, "metric": "won", "value": 1})
    assert outcome.status_code == 400 and "not blank" in outcome.get_json()["error"]
    counted = client.get(f"/v1/experiments/{exp}/unit-outcomes?unit_id=%20", headers=admin)
    assert counted.status_code == 400 and "not blank" in counted.get_json()["error"]


def test_v2_refuses_a_blank_unit_id(v2app: Flask) -> None:
    client = v2app.test_client()
    upload(client, bearer(v2app, "admin"), EXAMPLE)
    predictor = bearer(v2app, "predict")
    for blank in ("", "  "):
        answer = client.post("/v2/models/default/infer", headers=predictor,
                             json=infer_body(flowers(1)[:1], blank))
        assert answer.status_code == 400, answer.get_json()
        assert "the unit id in 'parameters.unit_id' is blank" in answer.get_json()["error"]
    assert _events(v2app) == 0
