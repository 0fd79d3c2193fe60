"""Predict and correct through the HTTP API, with real trained candidates."""

from __future__ import annotations

import base64
import time

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core import receipts
from core.outbox import pending_count
from core.store.models import OutboxEvent
from serving.images import encode_png
from tests.workloads.ocr.ccl_cases import dashes
from workloads.ocr.dataset import ONLINE_MIX, sample_requests


def _image(seed: int = 0):  # noqa: ANN202
    return next(sample_requests(1, ONLINE_MIX, seed=seed))


def predict(client: FlaskClient, headers: dict, unit: str = "u1", seed: int = 0, **extra):  # noqa: ANN003, ANN201
    sample = _image(seed)
    body = {"image_base64": base64.b64encode(encode_png(sample.image)).decode(),
            "unit_id": unit, **extra}
    return client.post("/v1/predict", json=body, headers=headers)


def test_predict_json_returns_answer_and_receipt(client: FlaskClient, predictor: dict,
                                                 app: Flask) -> None:
    response = predict(client, predictor, slice="handwritten/middle")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"prediction_id", "output", "confidence", "receipt"}
    assert 0 <= body["confidence"] <= 1 and body["output"]
    db = app.extensions["abvoc"].db
    assert pending_count(db) == 1
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(OutboxEvent)) == 1


def test_predict_multipart_and_admin_sees_candidate(client: FlaskClient, admin: dict) -> None:
    sample = _image(3)
    response = client.post(
        "/v1/predict", headers=admin, content_type="multipart/form-data",
        data={"image": (__import__("io").BytesIO(encode_png(sample.image)), "f.png"),
              "unit_id": "u2"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["candidate"].startswith("ocr-")
    # A field the route does not take (a misspelt scope) is refused, as in JSON, not dropped.
    for extra in ({"scpoe": "flowers"}, {"other": (__import__("io").BytesIO(b"x"), "x.png")}):
        refused = client.post(
            "/v1/predict", headers=admin, content_type="multipart/form-data",
            data={"image": (__import__("io").BytesIO(encode_png(sample.image)), "f.png"),
                  "unit_id": "u2", **extra})
        assert refused.status_code == 400, refused.get_json()
        assert "unknown field(s)" in refused.get_json()["error"] and "'scope'" in \
            refused.get_json()["error"]


def test_bad_images_are_refused_with_a_reason(client: FlaskClient, predictor: dict) -> None:
    bad = client.post("/v1/predict", json={"image_base64": "!!!", "unit_id": "u"},
                      headers=predictor)
    assert bad.status_code == 400 and "base64" in bad.get_json()["error"]
    junk = base64.b64encode(b"not an image").decode()
    bad = client.post("/v1/predict", json={"image_base64": junk, "unit_id": "u"},
                      headers=predictor)
    assert bad.status_code == 400 and "PNG or JPEG" in bad.get_json()["error"]
    assert "0x" not in bad.get_json()["error"]
    big = base64.b64encode(b"0" * (3 * 1024 * 1024)).decode()
    bad = client.post("/v1/predict", json={"image_base64": big, "unit_id": "u"},
                      headers=predictor)
    assert bad.status_code == 413
    missing = predict(client, predictor, unit="")
    assert missing.status_code == 400 and "unit_id" in missing.get_json()["error"]


def test_an_image_of_too_many_marks_is_refused_and_nothing_is_stored(
        client: FlaskClient, predictor: dict, app: Flask) -> None:
    """A page of 4,900 dashes: a 400 naming the count, quickly, and no event or ledger row."""
    db = app.extensions["abvoc"].db
    before = pending_count(db)
    body = {"image_base64": base64.b64encode(encode_png(dashes(70, 70))).decode(),
            "unit_id": "u-dashes"}
    start = time.perf_counter()
    refused = client.post("/v1/predict", json=body, headers=predictor)
    assert time.perf_counter() - start < 5.0
    assert refused.status_code == 400, refused.get_json()
    assert "4900 separate ink marks" in refused.get_json()["error"]
    assert pending_count(db) == before
    assert predict(client, predictor).status_code == 200  # the candidate still serves


def test_correction_flow(client: FlaskClient, predictor: dict, corrector: dict,
                         app: Flask) -> None:
    served = predict(client, predictor).get_json()
    body = {"prediction_id": served["prediction_id"], "receipt": served["receipt"],
            "corrected_output": "\\frac{x}{2}", "rating": 2}
    first = client.post("/v1/corrections", json=body, headers=corrector)
    assert first.status_code == 202, first.get_json()
    again = client.post("/v1/corrections", json=body, headers=corrector)
    assert again.status_code == 202
    assert again.get_json()["correction_id"] == first.get_json()["correction_id"]
    assert again.get_json()["duplicate"] is True
    assert pending_count(app.extensions["abvoc"].db) == 2  # one prediction, one correction
    # With a key first, the same body again without one is that request too; a new key is a
    # new correction, said so.
    other = {**body, "rating": 1}
    keyed = client.post("/v1/corrections", json=other,
                        headers={**corrector, "Idempotency-Key": "k-1"}).get_json()
    keyless = client.post("/v1/corrections", json=other, headers=corrector).get_json()
    assert keyless == {**keyed, "duplicate": True}
    fresh = client.post("/v1/corrections", json=other,
                        headers={**corrector, "Idempotency-Key": "k-2"}).get_json()
    assert fresh["duplicate"] is False and fresh["correction_id"] != keyed["correction_id"]
    assert pending_count(app.extensions["abvoc"].db) == 4

    unknown = client.post("/v1/corrections", headers=corrector,
                          json={**body, "prediction_id": "nope",
                                "receipt": receipts.sign("test-secret", "nope")})
    assert unknown.status_code == 404
    forged = client.post("/v1/corrections", headers=corrector, json={**body, "receipt": "0" * 64})
    assert forged.status_code == 403
    malformed = client.post("/v1/corrections", headers=corrector,
                            json={**body, "corrected_output": "\\frac{x}{"})
    assert malformed.status_code == 400 and "braces" in malformed.get_json()["error"]
    # The command quoted as sent, one backslash (repr showed two, which the client never sent).
    unknown_command = client.post("/v1/corrections", headers=corrector,
                                  json={**body, "corrected_output": "\\foo{1}"})
    assert unknown_command.get_json()["error"] == \
        "'corrected_output' is not valid LaTeX: unknown command '\\foo' at token 1"
    wrong_type = client.post("/v1/corrections", headers=corrector, json={**body, "rating": "5"})
    assert wrong_type.status_code == 400 and "rating" in wrong_type.get_json()["error"]
    huge = client.post("/v1/corrections", headers=corrector,
                       json={**body, "corrected_output": "x" * 10_001})  # an answer's limit
    assert huge.status_code == 400 and "'corrected_output'" in huge.get_json()["error"]
    deep = client.post("/v1/corrections", headers=corrector,
                       json={**body, "corrected_output": "x^{" * 600 + "y" + "}" * 600})
    assert deep.status_code == 400 and "nested more than 64 deep" in deep.get_json()["error"]
    assert pending_count(app.extensions["abvoc"].db) == 4  # nothing partial stored


def test_nul_characters_are_refused_before_the_store(client: FlaskClient, admin: dict) -> None:
    spec = {"name": "n", "arms": [
        {"name": "c", "candidate": "ocr-small-printed", "weight": 1, "control": True},
        {"name": "t", "candidate": "\u0000", "weight": 1}]}
    response = client.post("/v1/experiments", json=spec, headers=admin)
    assert response.status_code == 400 and "NUL" in response.get_json()["error"]
    listed = client.get("/v1/experiments?status=%00", headers=admin)
    assert listed.status_code == 400
    unknown = client.get("/v1/experiments?status=asleep", headers=admin)
    assert unknown.status_code == 400 and "status" in unknown.get_json()["error"]
