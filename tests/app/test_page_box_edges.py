"""A page box past the page's edges is refused, as a correction of the page's prediction and as
an annotator's label of it, naming the box, with nothing stored: only order and area were
checked, so ``[700, 900, 5000, 5000]`` on a 720x1000 page was taken and became its truth. The
page's size is read from its kept input (a correction sent at once) or from its prediction's
record (the extraction stage names it; inputs need not be kept), or, for a new page a Label
Studio import brings with its labels, from the page's image."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import delete, func, select

from core.errors import AbvocError
from core.store.models import CorrectionRequest, PredictionInput, RelabelItem, RelabelLabel
from feedback.label_studio import import_tasks
from serving.bundles import register_bundle
from serving.images import encode_png
from tests.app.conftest import _key
from tests.support.v2 import drain

OUTSIDE = "reaches past the page, 720 wide and 1000 high"
OVERLAP = ("0.5 or more is one formula to the page's matching of extraction boxes; give each "
           "formula's box once, around its own ink")


def _page(app: Flask, client: FlaskClient, predictor: dict, extractors: dict[str, Path]) -> dict:
    """A blank 720x1000 page served by pages-xycut: its prediction (no formulas on it)."""
    register_bundle(app.extensions["abvoc_serving"].registry,
                    Path(app.extensions["abvoc"].settings.models_dir), extractors["pages-xycut"])
    blank = np.full((1000, 720), 255, np.uint8)
    answer = client.post("/v1/pages", headers=predictor, json={
        "image_base64": base64.b64encode(encode_png(blank)).decode(), "unit_id": "u",
        "page_scope": "pages-xycut", "formula_scope": "ocr-small-mixed"})
    assert answer.status_code == 200 and answer.get_json()["boxes"] == [], answer.get_json()
    return answer.get_json()["page"]


def _count(app: Flask, table: type) -> int:
    with app.extensions["abvoc"].db.session() as s:
        return s.scalar(select(func.count()).select_from(table))


def test_a_correction_past_the_page_is_refused(app: Flask, client: FlaskClient, predictor: dict,
                                               corrector: dict,
                                               extractors: dict[str, Path]) -> None:
    page = _page(app, client, predictor, extractors)

    def correct(box: list[int]) -> tuple[int, str]:
        sent = client.post("/v1/corrections", headers=corrector, json={
            "prediction_id": page["prediction_id"], "receipt": page["receipt"],
            "corrected_output": [{"box": [5, 5, 60, 40], "score": 1.0},
                                 {"box": box, "score": 1.0}]})
        return sent.status_code, sent.get_json().get("error", "")

    # At once: the prediction's record is not written yet, its kept input gives the size.
    assert correct([700, 900, 5000, 5000]) == (
        400, f"'corrected_output' at /1/box: box [700, 900, 5000, 5000] {OUTSIDE}: x1 (5000) is "
             "past its width; give a box inside the page, in its pixels")
    status, error = correct([600, 900, 720, 1001])
    assert status == 400 and f"{OUTSIDE}: y1 (1001) is past its height" in error
    # The same box twice would count its formula twice in the page's truth.
    assert correct([5, 5, 60, 40]) == (
        400, "'corrected_output' at /1/box: box [5, 5, 60, 40] is the box at /0/box again; "
             "give each formula's box once")
    # Nor may two boxes overlap as much as the page's matching pairs a box with a formula
    # (IoU 0.5): one extraction box would match either, and the other be a miss of every one.
    assert correct([6, 6, 60, 40]) == (
        400, "'corrected_output' at /1/box: box [6, 6, 60, 40] overlaps the box at /0/box, "
             f"[5, 5, 60, 40], at IoU 0.95; {OVERLAP}")
    status, error = correct([5, 5, 60, 75])  # the threshold itself: 55 * 35 / (55 * 70)
    assert status == 400 and f"at IoU 0.50; {OVERLAP}" in error, error
    assert _count(app, CorrectionRequest) == 0
    # Its record applied and its input not kept: the extraction stage gives the size.
    drain(app, 1)
    with app.extensions["abvoc"].db.session() as s:
        s.execute(delete(PredictionInput))
    status, error = correct([721, 900, 730, 950])
    assert status == 400 and f"{OUTSIDE}: x1 (730) is past its width" in error
    assert _count(app, CorrectionRequest) == 0
    assert correct([600, 900, 720, 1000])[0] == 202  # to the edge is inside
    assert correct([5, 5, 60, 76])[0] == 202  # just below it: 55 * 35 / (55 * 71), 0.49
    assert correct([40, 5, 120, 40])[0] == 202  # a loose box over the next one's edge: 0.17


def test_a_label_past_the_page_is_refused(app: Flask, client: FlaskClient, admin: dict,
                                          predictor: dict,
                                          extractors: dict[str, Path]) -> None:
    annotator = _key(app, "annotate")
    client.put("/v1/relabel/rules", headers=admin, json={"audit_rate": 1.0})
    page = _page(app, client, predictor, extractors)
    drain(app, 1)
    item = client.post("/v1/relabel/claim", headers=annotator).get_json()["item"]
    assert item["prediction_id"] == page["prediction_id"] and item["output_type"] == "json"

    def label(box: list[int]) -> tuple[int, str]:
        sent = client.post(f"/v1/relabel/items/{item['id']}/label", headers=annotator,
                           json={"label": [{"box": box, "score": 1.0}]})
        return sent.status_code, sent.get_json().get("error", "")

    assert label([700, 900, 5000, 5000]) == (
        400, f"'label' at /0/box: box [700, 900, 5000, 5000] {OUTSIDE}: x1 (5000) is past its "
             "width; give a box inside the page, in its pixels")
    assert _count(app, RelabelLabel) == 0
    assert label([600, 900, 720, 1000])[0] == 200


def test_a_new_page_s_label_past_its_edges_is_refused_in_an_import(
        app: Flask, extractors: dict[str, Path], tmp_path: Path) -> None:
    """New data in a Label Studio import: the page comes with its labels, so its image gives
    the edges (it has no prediction whose record or kept input could)."""
    register_bundle(app.extensions["abvoc_serving"].registry,
                    Path(app.extensions["abvoc"].settings.models_dir), extractors["pages-xycut"])
    (tmp_path / "page.png").write_bytes(encode_png(np.full((1000, 720), 255, np.uint8)))

    def imported(box: list[int]) -> dict:
        result = [{"from_name": "label", "to_name": "input", "type": "textarea",
                   "value": {"text": [json.dumps([{"box": box, "score": 1.0}])]}}]
        (tmp_path / "tasks.json").write_text(json.dumps([{
            "data": {"image": "page.png"},
            "annotations": [{"completed_by": 7, "result": result}]}]))
        return import_tasks(app.extensions["abvoc"].db, tmp_path, candidate="pages-xycut")

    with pytest.raises(AbvocError) as refused:
        imported([700, 900, 5000, 5000])
    assert refused.value.status == 400, refused.value.message
    assert f"{OUTSIDE}: x1 (5000) is past its width" in refused.value.message
    assert _count(app, RelabelItem) == _count(app, RelabelLabel) == 0
    assert imported([600, 900, 720, 1000])["new_items"] == 1  # to the edge is inside


def test_a_jpeg_page_with_long_metadata_still_has_edges(
        app: Flask, client: FlaskClient, predictor: dict, corrector: dict,
        extractors: dict[str, Path]) -> None:
    """A JPEG's size is in its frame header, after its metadata: with more than the 64 KiB read
    of it (an ICC profile, an EXIF thumbnail) the size was unknown, and a box past the page's
    edges, sent at once, was taken."""
    register_bundle(app.extensions["abvoc_serving"].registry,
                    Path(app.extensions["abvoc"].settings.models_dir), extractors["pages-xycut"])
    out = io.BytesIO()
    Image.fromarray(np.full((1000, 720), 255, np.uint8)).save(out, format="JPEG",
                                                              icc_profile=bytes(70_000))
    page = client.post("/v1/pages", headers=predictor, json={
        "image_base64": base64.b64encode(out.getvalue()).decode(), "unit_id": "u",
        "page_scope": "pages-xycut", "formula_scope": "ocr-small-mixed"}).get_json()["page"]

    def correct(box: list[int]) -> tuple[int, str]:
        sent = client.post("/v1/corrections", headers=corrector, json={
            "prediction_id": page["prediction_id"], "receipt": page["receipt"],
            "corrected_output": [{"box": box, "score": 1.0}]})
        return sent.status_code, sent.get_json().get("error", "")

    status, error = correct([700, 900, 5000, 5000])
    assert status == 400 and f"{OUTSIDE}: x1 (5000) is past its width" in error, error
    assert _count(app, CorrectionRequest) == 0
    assert correct([600, 900, 720, 1000])[0] == 202
