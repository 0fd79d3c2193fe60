"""A correction of a page's boxes (its extraction prediction) whose box is drawn backwards or has
no area is refused, saying which box and what to fix, with nothing stored: JSON Schema holds a
box to four integers but not its right edge past its left, so such a box became the page's
truth."""

from __future__ import annotations

import base64
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core.store.models import Correction, CorrectionRequest
from serving.bundles import register_bundle
from serving.images import encode_png
from tests.support.v2 import drain
from workloads.ocr.pages.generator import OFFLINE_PAGE_MIX, generate_pages

FIX = "give [left, top, right, bottom], the right and bottom edges past the left and top"


def test_inverted_or_empty_boxes_are_refused_and_nothing_stored(
        app: Flask, client: FlaskClient, predictor: dict, corrector: dict,
        extractors: dict[str, Path]) -> None:
    register_bundle(app.extensions["abvoc_serving"].registry,
                    Path(app.extensions["abvoc"].settings.models_dir), extractors["pages-xycut"])
    page = generate_pages(1, OFFLINE_PAGE_MIX, seed=0, split="offline-test")[0]
    answer = client.post("/v1/pages", headers=predictor, json={
        "image_base64": base64.b64encode(encode_png(page.image)).decode(), "unit_id": "u",
        "page_scope": "pages-xycut", "formula_scope": "ocr-small-mixed"})
    assert answer.status_code == 200, answer.get_json()
    boxes, served = answer.get_json()["boxes"], answer.get_json()["page"]
    n = len(boxes)

    def correct(box: list[int]) -> tuple[int, str]:
        sent = client.post("/v1/corrections", headers=corrector, json={
            "prediction_id": served["prediction_id"], "receipt": served["receipt"],
            "corrected_output": [*boxes, {"box": box, "score": 1.0}]})
        return sent.status_code, sent.get_json().get("error", "")

    for box, side in (([60, 5, 5, 40], "x1 (5) is not past x0 (60)"),
                      ([5, 40, 60, 5], "y1 (5) is not past y0 (40)"),
                      ([5, 5, 5, 40], "x1 (5) is not past x0 (5)"),
                      ([5, 7, 60, 7], "y1 (7) is not past y0 (7)")):
        assert correct(box) == (400, f"'corrected_output' at /{n}/box: box {box} is inverted or "
                                     f"of no area: {side}; {FIX}"), box
    with app.extensions["abvoc"].db.session() as s:
        assert s.scalar(select(func.count()).select_from(CorrectionRequest)) == 0
    assert correct([5, 5, 60, 40])[0] == 202


def test_a_box_of_integral_floats_is_taken_as_its_integers(
        app: Flask, client: FlaskClient, predictor: dict, corrector: dict,
        extractors: dict[str, Path]) -> None:
    """``5.0`` is the integer 5 to JSON Schema, whose ``integer`` the answer's schema holds a box
    to (and to the store, which writes it as 5): the box check refused it as "not four
    integers", so a client whose JSON writes every number with a point could correct no page."""
    register_bundle(app.extensions["abvoc_serving"].registry,
                    Path(app.extensions["abvoc"].settings.models_dir), extractors["pages-xycut"])
    page = generate_pages(1, OFFLINE_PAGE_MIX, seed=0, split="offline-test")[0]
    served = client.post("/v1/pages", headers=predictor, json={
        "image_base64": base64.b64encode(encode_png(page.image)).decode(), "unit_id": "u",
        "page_scope": "pages-xycut", "formula_scope": "ocr-small-mixed"}).get_json()["page"]

    def correct(box: list[float]) -> tuple[int, str]:
        sent = client.post("/v1/corrections", headers=corrector, json={
            "prediction_id": served["prediction_id"], "receipt": served["receipt"],
            "corrected_output": [{"box": box, "score": 1.0}]})
        return sent.status_code, sent.get_json().get("error", "")

    # A fraction is no pixel: the schema's own message names it.
    status, error = correct([5.5, 5, 60, 40])
    assert status == 400 and "at /0/box/0: 5.5 is not of type \"integer\"" in error, error
    assert correct([60.0, 5, 5, 40]) == (
        400, f"'corrected_output' at /0/box: box [60.0, 5, 5, 40] is inverted or of no area: "
             f"x1 (5) is not past x0 (60); {FIX}")
    assert correct([5.0, 5.0, 60.0, 40.0])[0] == 202
    drain(app, 1, count=lambda s: s.scalar(select(func.count()).select_from(Correction)),
          what="corrections")
    with app.extensions["abvoc"].db.session() as s:
        kept = s.scalars(select(Correction.corrected_output)).one()
    assert kept == '[{"box":[5,5,60,40],"score":1}]'
