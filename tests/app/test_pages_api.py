"""POST /v1/pages end to end: a page goes to the extraction candidate routed on its scope, each
formula to the OCR candidate as a prediction of its own; one formula is corrected, a missed
formula is reported as a correction of the page's boxes, and after the outbox, bus and worker
the stage attribution blames extraction for the page and the OCR's stages for the formula."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core.store.models import Prediction, ServedPrediction
from serving.bundles import register_bundle
from serving.images import encode_png
from tests.support.v2 import drain
from workloads.ocr.pages.generator import OFFLINE_PAGE_MIX, generate_pages
from workloads.ocr.pages.reading import reported_boxes


def _page_body(**extra: str) -> dict:
    """A handwritten worksheet page of twelve formulas."""
    page = generate_pages(8, OFFLINE_PAGE_MIX, seed=5, split="offline-test")[5]
    assert page.category.startswith("handwritten/") and len(page.formulas) == 12
    return {"image_base64": base64.b64encode(encode_png(page.image)).decode(),
            "unit_id": "pupil-1", **extra}


def test_a_page_read_formula_by_formula(app: Flask, client: FlaskClient, admin: dict,
                                        predictor: dict, corrector: dict,
                                        extractors: dict[str, Path]) -> None:
    serving = app.extensions["abvoc_serving"]
    models = Path(app.extensions["abvoc"].settings.models_dir)
    register_bundle(serving.registry, models, extractors["pages-xycut"])
    created = client.post("/v1/experiments", headers=admin, json={
        "name": "pages", "scope": "pages", "arms": [
            {"name": "control", "candidate": "pages-xycut", "weight": 1, "control": True},
            {"name": "again", "candidate": "pages-xycut", "weight": 1}]})
    assert created.status_code == 201, created.get_json()
    exp = created.get_json()
    assert client.post(f"/v1/experiments/{exp['id']}/start", headers=admin).status_code == 200
    ocr = client.post("/v1/experiments", headers=admin, json={
        "name": "formulas", "scope": "formulas", "arms": [
            {"name": "control", "candidate": "ocr-small-mixed", "weight": 1, "control": True},
            {"name": "large", "candidate": "ocr-large-mixed", "weight": 1}]}).get_json()
    assert client.post(f"/v1/experiments/{ocr['id']}/start", headers=admin).status_code == 200

    answer = client.post("/v1/pages", headers=predictor,
                         json=_page_body(formula_scope="formulas"))
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    formulas = body["formulas"]
    assert len(formulas) == len(body["boxes"]) >= 10
    ids = {f["prediction_id"] for f in formulas} | {body["page"]["prediction_id"]}
    assert len(ids) == len(formulas) + 1  # every formula is a prediction of its own
    assert all(f["receipt"] and isinstance(f["output"], str) for f in formulas)
    assert "candidate" not in body["page"]  # only admin keys see who served

    first = formulas[0]
    fixed = client.post("/v1/corrections", headers=corrector, json={
        "prediction_id": first["prediction_id"], "receipt": first["receipt"],
        "corrected_output": "x+1=2"})
    assert fixed.status_code == 202, fixed.get_json()
    missed = reported_boxes(body["boxes"], "missed", [[5, 5, 60, 40]])
    reported = client.post("/v1/corrections", headers=corrector, json={
        "prediction_id": body["page"]["prediction_id"], "receipt": body["page"]["receipt"],
        "corrected_output": missed, "comment": "the first problem was not read"})
    assert reported.status_code == 202, reported.get_json()

    drain(app, len(ids))
    with app.extensions["abvoc"].db.session() as s:
        stored = s.get(Prediction, first["prediction_id"])
        assert stored.stages["extraction"]["page_prediction_id"] == body["page"]["prediction_id"]
        assert stored.stages["extraction"]["box"] == first["box"]
        assert "recognizer" in stored.stages  # the OCR's own stages are kept beside it
    report = client.get(f"/v1/experiments/{exp['id']}/divergence", headers=admin).get_json()
    rows = [r for r in report["stage_attribution"]["rows"] if r["slice"] == "all"]
    assert [(r["candidate"], r["counts"]["extraction"]) for r in rows] == [("pages-xycut", 1)]

    # A page scope served by an OCR candidate (or a formula scope by an extraction one) is
    # refused, saying why, before anything is recorded.
    def served() -> int:
        with app.extensions["abvoc"].db.session() as s:
            return s.scalar(select(func.count()).select_from(ServedPrediction))

    before = served()
    wrong = client.post("/v1/pages", headers=predictor,
                        json=_page_body(page_scope="formulas"))
    assert wrong.status_code == 409 and "extraction candidate" in wrong.get_json()["error"]
    swapped = client.post("/v1/pages", headers=predictor,
                          json=_page_body(formula_scope="pages"))
    assert swapped.status_code == 409 and "OCR candidate" in swapped.get_json()["error"]
    assert served() == before
    unknown = client.post("/v1/pages", headers=predictor, json=_page_body(scope="x"))
    assert unknown.status_code == 400 and "unknown field(s)" in unknown.get_json()["error"]


def test_pages_need_no_unit_id_where_both_scopes_assign_each_request(
        app: Flask, client: FlaskClient, admin: dict, predictor: dict,
        extractors: dict[str, Path]) -> None:
    """As on /v1/predict: unit `request` makes each request its own unit, so a page need send
    no unit id there; a scope whose experiment keeps a user's requests on one arm needs it, and
    its absence is a 400 before anything is served."""
    serving = app.extensions["abvoc_serving"]
    register_bundle(serving.registry, Path(app.extensions["abvoc"].settings.models_dir),
                    extractors["pages-xycut"])
    for scope, candidates, unit in (("pages", ("pages-xycut",) * 2, "request"),
                                    ("formulas", ("ocr-small-mixed", "ocr-large-mixed"), "request"),
                                    ("sticky", ("ocr-small-mixed", "ocr-large-mixed"), "user")):
        exp = client.post("/v1/experiments", headers=admin, json={
            "name": scope, "scope": scope, "unit": unit, "arms": [
                {"name": "control", "candidate": candidates[0], "weight": 1, "control": True},
                {"name": "other", "candidate": candidates[1], "weight": 1}]}).get_json()
        assert client.post(f"/v1/experiments/{exp['id']}/start", headers=admin).status_code == 200
    body = _page_body(formula_scope="formulas")
    del body["unit_id"]
    answer = client.post("/v1/pages", headers=predictor, json=body)
    assert answer.status_code == 200, answer.get_json()
    assert len(answer.get_json()["formulas"]) >= 10

    with app.extensions["abvoc"].db.session() as s:
        before = s.scalar(select(func.count()).select_from(ServedPrediction))
    refused = client.post("/v1/pages", headers=predictor, json=body | {"formula_scope": "sticky"})
    assert refused.status_code == 400 and "'unit_id'" in refused.get_json()["error"]
    with app.extensions["abvoc"].db.session() as s:
        assert s.scalar(select(func.count()).select_from(ServedPrediction)) == before


def test_a_page_scope_nothing_serves_says_how_pages_are_served(client: FlaskClient,
                                                                predictor: dict) -> None:
    """No experiment on `pages` and no candidate of that name: the 404 points to the extraction
    candidates, not ABVOC_DEFAULT_CANDIDATE (an OCR candidate, which a page scope refuses)."""
    answer = client.post("/v1/pages", headers=predictor, json=_page_body())
    assert answer.status_code == 404
    error = answer.get_json()["error"]
    assert "abvoc pages train" in error and "'page_scope'" in error
    assert "ABVOC_DEFAULT_CANDIDATE" not in error
    # Another scope nothing serves keeps the general advice.
    formula = client.post("/v1/predict", headers=predictor, json={
        "image_base64": _page_body()["image_base64"], "unit_id": "u", "scope": "nowhere"})
    assert formula.status_code == 404 and "ABVOC_DEFAULT_CANDIDATE" in formula.get_json()["error"]


def test_a_page_of_too_many_formulas_is_refused_with_its_recorded_prediction(
        client: FlaskClient, admin: dict, predictor: dict, corrector: dict,
        extractors: dict[str, Path], app: Flask, monkeypatch) -> None:  # noqa: ANN001
    """The page's prediction (the boxes found) was recorded before the count was checked, and
    the 413 gave no receipt: a prediction counted that nobody could correct."""
    from app.api import pages

    serving = app.extensions["abvoc_serving"]
    register_bundle(serving.registry, Path(app.extensions["abvoc"].settings.models_dir),
                    extractors["pages-xycut"])
    monkeypatch.setattr(pages, "MAX_FORMULAS", 3)  # the page holds twelve
    answer = client.post("/v1/pages", headers=predictor,
                         json=_page_body(page_scope="pages-xycut", formula_scope="ocr-small-mixed"))
    assert answer.status_code == 413 and "at most 3 are read" in answer.get_json()["error"]
    recorded = answer.get_json()["details"]
    fixed = client.post("/v1/corrections", headers=corrector, json={
        **recorded, "corrected_output": [{"box": [1, 1, 9, 9], "score": 1.0}]})
    assert fixed.status_code == 202, fixed.get_json()
    with app.extensions["abvoc"].db.session() as s:  # the page alone: no formula was read
        assert s.scalar(select(func.count()).select_from(ServedPrediction)) == 1


def test_a_page_scanned_at_300_dpi_is_read(app: Flask, client: FlaskClient, predictor: dict,
                                           extractors: dict[str, Path]) -> None:
    """An A4 page at 300 dpi is 8.7 Mpixel: /v1/pages refused it (413) with the formula
    limit of 4 Mpixel, while `abvoc dataset split-pages` took the same scan."""
    from PIL import Image

    serving = app.extensions["abvoc_serving"]
    register_bundle(serving.registry, Path(app.extensions["abvoc"].settings.models_dir),
                    extractors["pages-xycut"])
    page = generate_pages(8, OFFLINE_PAGE_MIX, seed=5, split="offline-test")[5].image
    scale = 3508 / page.shape[0]
    scan = Image.fromarray(page).resize((round(page.shape[1] * scale), 3508), Image.BILINEAR)
    assert scan.size[0] * scan.size[1] > 8_000_000
    data = encode_png(np.asarray(scan))
    answer = client.post("/v1/pages", headers=predictor, json={
        "image_base64": base64.b64encode(data).decode(), "unit_id": "pupil-2",
        "page_scope": "pages-xycut", "formula_scope": "ocr-small-mixed"})
    assert answer.status_code == 200, answer.get_json()
    assert len(answer.get_json()["formulas"]) >= 10
    formula = client.post("/v1/predict", headers=predictor, json={
        "image_base64": base64.b64encode(data).decode(), "unit_id": "u"})
    assert formula.status_code == 413 and "4000000 pixels" in formula.get_json()["error"]
