"""A phone photo of a page (a JPEG stored as the sensor saw it, with an EXIF orientation tag
saying how to turn it upright) is read upright, as every viewer shows it: it was read on its
side, so the page was cut into other boxes (past the page's edges as the customer sees it), its
formulas read sideways, and a correction's box on the upright page refused as past its edge."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image, ImageOps

from core.grayscale import gray_pixels, oriented_size
from feedback.item_view import as_png
from serving.bundles import register_bundle
from workloads.ocr.pages.generator import OFFLINE_PAGE_MIX, generate_pages


def _jpeg(image: Image.Image, orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_is_turned_as_pillow_turns_it(orientation: int) -> None:
    stored = Image.fromarray(np.arange(24 * 40, dtype=np.uint8).reshape(24, 40) % 251)
    data = _jpeg(stored, orientation)
    with Image.open(io.BytesIO(data)) as opened:
        expected = np.asarray(ImageOps.exif_transpose(opened).convert("L"))
    with Image.open(io.BytesIO(data)) as opened:
        assert oriented_size(opened) == expected.shape[::-1]
        np.testing.assert_array_equal(gray_pixels(opened), expected)
    with Image.open(io.BytesIO(as_png(data))) as shown:  # what annotators are shown
        np.testing.assert_array_equal(np.asarray(shown.convert("L")), expected)


def test_a_phone_photo_of_a_page_is_read_upright(app: Flask, client: FlaskClient,
                                                 predictor: dict, corrector: dict,
                                                 extractors: dict[str, Path]) -> None:
    register_bundle(app.extensions["abvoc_serving"].registry,
                    Path(app.extensions["abvoc"].settings.models_dir), extractors["pages-xycut"])
    page = generate_pages(8, OFFLINE_PAGE_MIX, seed=5, split="offline-test")[5].image
    assert page.shape == (1000, 720)
    upright = Image.fromarray(page)
    # Stored turned a quarter left, tagged 6: "turn a quarter right to show it".
    phone = _jpeg(upright.transpose(Image.Transpose.ROTATE_90), 6)

    def read(data: bytes) -> dict:
        answer = client.post("/v1/pages", headers=predictor, json={
            "image_base64": base64.b64encode(data).decode(), "unit_id": "u",
            "page_scope": "pages-xycut", "formula_scope": "ocr-small-mixed"})
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()

    with Image.open(io.BytesIO(phone)) as opened:  # the photo as a viewer shows it, lossless
        shown = io.BytesIO()
        ImageOps.exif_transpose(opened).save(shown, format="PNG")
    plain, turned = read(shown.getvalue()), read(phone)
    assert len(plain["boxes"]) == 12  # the page's twelve formulas
    assert [b["box"] for b in turned["boxes"]] == [b["box"] for b in plain["boxes"]]
    assert [f["output"] for f in turned["formulas"]] == [f["output"] for f in plain["formulas"]]
    # At once (the size from the kept photo's header): a box low on the upright page is in it.
    fixed = client.post("/v1/corrections", headers=corrector, json={
        "prediction_id": turned["page"]["prediction_id"],
        "receipt": turned["page"]["receipt"],
        "corrected_output": [{"box": [10, 900, 300, 990], "score": 1.0}]})
    assert fixed.status_code == 202, fixed.get_json()
