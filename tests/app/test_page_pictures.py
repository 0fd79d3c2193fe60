"""A page box the OCR refuses as a formula (a picture: more separate ink marks than one formula
holds) is answered as such in the page's `formulas`, and the other formulas are read. It was a
400 for the whole page raised from inside the loop over formulas, after the page's prediction and
every formula before it had been recorded: a request refused yet half-recorded."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core.store.models import ServedPrediction
from serving.bundles import register_bundle
from serving.images import encode_png
from workloads.ocr.pages.generator import OFFLINE_PAGE_MIX, generate_pages
from workloads.ocr.pages.reading import PAGE_MARKS, cut_formulas, formula_marks


def halftone(image: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> int:
    """5x5 black squares at a 6 px pitch over [x0, x1) x [y0, y1): a picture of many marks."""
    marks = 0
    for y in range(y0, y1, 6):
        for x in range(x0, x1, 6):
            image[y:y + 5, x:x + 5] = 0
            marks += 1
    return marks


def five_formulas_and_a_picture() -> np.ndarray:
    """A printed worksheet page (720x1000) cut to its first five formulas, a picture below."""
    page = generate_pages(12, OFFLINE_PAGE_MIX, seed=5, split="offline-test")[5]
    assert page.category.startswith("printed/") and page.columns == 1
    image = page.image.copy()
    image[page.formulas[5].box[1] - 2:, :] = 255
    assert halftone(image, 470, 800, 710, 980) == 1200
    return image


def test_a_picture_on_a_page_is_answered_as_no_formula_and_the_rest_read(
        app: Flask, client: FlaskClient, predictor: dict, extractors: dict[str, Path]) -> None:
    register_bundle(app.extensions["abvoc_serving"].registry,
                    Path(app.extensions["abvoc"].settings.models_dir), extractors["pages-xycut"])
    answer = client.post("/v1/pages", headers=predictor, json={
        "image_base64": base64.b64encode(encode_png(five_formulas_and_a_picture())).decode(),
        "unit_id": "u", "page_scope": "pages-xycut", "formula_scope": "ocr-small-mixed"})
    assert answer.status_code == 200, answer.get_json()
    formulas = answer.get_json()["formulas"]
    refused = [f for f in formulas if "error" in f]
    read = [f for f in formulas if "error" not in f]
    assert len(refused) == 1 and len(read) == 5, formulas
    picture = refused[0]
    x0, y0, x1, y1 = picture["box"]
    assert x0 <= 470 and y0 <= 800 and x1 >= 709 and y1 >= 979
    assert picture["status"] == 400 and "prediction_id" not in picture and "output" not in picture
    assert "1200 separate ink marks" in picture["error"] and "not a formula" in picture["error"]
    assert all(f["prediction_id"] and isinstance(f["output"], str) for f in read)
    with app.extensions["abvoc"].db.session() as s:  # the page and its five formulas, no more
        assert s.scalar(select(func.count()).select_from(ServedPrediction)) == 6


def test_a_page_of_too_many_marks_is_refused_before_any_formula_is_read(
        app: Flask, client: FlaskClient, predictor: dict, corrector: dict,
        extractors: dict[str, Path]) -> None:
    """Six pictures of 1,024 marks each, each just within one formula's limit: read one by one
    they held the OCR candidate for seconds each (twenty, half a minute). The page's marks are
    bounded as a whole, before any formula is served; its own prediction keeps its receipt."""
    register_bundle(app.extensions["abvoc_serving"].registry,
                    Path(app.extensions["abvoc"].settings.models_dir), extractors["pages-xycut"])
    image = np.full((1000, 720), 255, np.uint8)
    for x in (60, 400):
        for y in (60, 380, 700):
            assert halftone(image, x, y, x + 192, y + 192) == 1024
    answer = client.post("/v1/pages", headers=predictor, json={
        "image_base64": base64.b64encode(encode_png(image)).decode(), "unit_id": "u",
        "page_scope": "pages-xycut", "formula_scope": "ocr-small-mixed"})
    assert answer.status_code == 413, answer.get_json()
    error = answer.get_json()["error"]
    assert error.startswith("the page's formulas hold 6144 separate ink marks; at most 4096 are "
                            "read per request") and "send the page in parts" in error
    with app.extensions["abvoc"].db.session() as s:  # the page alone: no formula was read
        assert s.scalar(select(func.count()).select_from(ServedPrediction)) == 1
    fixed = client.post("/v1/corrections", headers=corrector, json={
        **answer.get_json()["details"], "corrected_output": []})
    assert fixed.status_code == 202, fixed.get_json()


def test_the_example_pages_hold_far_fewer_marks_than_a_page_may() -> None:
    """The budget's margin: the densest of these pages holds a tenth of it or less."""
    pages = generate_pages(24, OFFLINE_PAGE_MIX, seed=3, split="offline-test")
    densest = max(sum(formula_marks(cut_formulas(
        p.image, [{"box": list(f.box), "score": 1.0} for f in p.formulas]))) for p in pages)
    assert 0 < densest <= PAGE_MARKS / 10
