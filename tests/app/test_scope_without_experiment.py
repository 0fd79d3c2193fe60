"""A scope no experiment runs in: served by the candidate named as the scope (a V2 client's model
name), else the configured default, else, for the `default` scope alone, the newest registered
candidate that is no page extractor. Any other name is a 404 on every model route, so a mistyped
model name is not answered by whichever candidate a team registered last."""

from __future__ import annotations

import base64
from pathlib import Path

from flask import Flask

from serving import predict
from serving.bundles import register_bundle
from serving.images import encode_png
from tests.support.bundles import EXAMPLE, copy_example, edit
from tests.support.keys import bearer
from tests.support.v2 import experiment, flowers, infer_body, upload
from workloads.ocr.dataset import ONLINE_MIX, sample_requests
from workloads.ocr.pages.generator import OFFLINE_PAGE_MIX, generate_pages

ROW = flowers(1)[0]


def _served_by(client, admin: dict, scope: str) -> tuple[int, str | None]:  # noqa: ANN001
    answer = client.post(f"/v2/models/{scope}/infer", headers=admin,
                         json=infer_body(ROW, unit="u1"))
    body = answer.get_json()
    return answer.status_code, (body.get("parameters") or {}).get("candidate") or body.get("error")


def test_a_scope_is_served_by_its_namesake_or_the_default_never_by_the_newest(
        v2app: Flask, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(predict, "DEFAULT_REFRESH_S", 0.0)  # see each registration at once
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload(client, admin, EXAMPLE)
    other = copy_example(tmp_path)
    edit(other, 'name = "iris-onnx"', 'name = "iris-later"')
    upload(client, admin, other)  # registered last

    assert _served_by(client, admin, "iris-onnx") == (200, "iris-onnx")  # its namesake
    assert _served_by(client, admin, "default") == (200, "iris-later")  # the newest
    status, said = _served_by(client, admin, "iris-typo")
    assert status == 404
    assert said == ("no experiment runs in scope 'iris-typo' and no candidate is named "
                    "'iris-typo': start an experiment on that scope, register a candidate of "
                    "that name, or set ABVOC_DEFAULT_CANDIDATE")
    for path in ("/v2/models/iris-typo", "/v2/models/iris-typo/ready"):
        assert client.get(path, headers=admin).status_code == 404
    # An experiment owns its scope; once it stops, the scope is unserved again.
    exp = experiment(client, admin, "iris-typo", "iris-onnx", "iris-later")
    assert _served_by(client, admin, "iris-typo")[0] == 200
    client.post(f"/v1/experiments/{exp['id']}/stop", headers=admin)
    assert _served_by(client, admin, "iris-typo")[0] == 404
    # A configured default serves every unowned scope; one no candidate has (a typo) is said
    # so, naming the setting, not the candidate (only admin keys learn which one serves).
    serving = v2app.extensions["abvoc_serving"]
    serving.predict.settings = serving.predict.settings.with_overrides(
        default_candidate="iris-onxx")
    status, said = _served_by(client, bearer(v2app, "predict"), "iris-typo")
    assert status == 404 and "ABVOC_DEFAULT_CANDIDATE names is not registered" in said, said
    assert "iris-onxx" not in said
    serving.predict.settings = serving.predict.settings.with_overrides(
        default_candidate="iris-onnx")
    assert _served_by(client, admin, "iris-typo") == (200, "iris-onnx")


def _image(image) -> dict:  # noqa: ANN001
    return {"image_base64": base64.b64encode(encode_png(image)).decode(), "unit_id": "u1"}


def test_a_page_extractor_registered_last_is_not_the_default(
        app: Flask, extractors: dict[str, Path], monkeypatch) -> None:  # noqa: ANN001
    """`abvoc pages train` registers the extractors last: as the newest they became the
    `default` scope's candidate, so /v1/predict answered formula images with page boxes and
    /v1/pages' default formula scope was a 409. The default is the newest of the others."""
    monkeypatch.setattr(predict, "DEFAULT_REFRESH_S", 0.0)
    client, admin = app.test_client(), bearer(app, "admin")
    formula = _image(next(sample_requests(1, ONLINE_MIX, seed=0)).image)
    before = client.post("/v1/predict", headers=admin, json=formula).get_json()["candidate"]
    register_bundle(app.extensions["abvoc_serving"].registry,
                    Path(app.extensions["abvoc"].settings.models_dir), extractors["pages-xycut"])
    after = client.post("/v1/predict", headers=admin, json=formula)
    assert after.status_code == 200, after.get_json()
    assert after.get_json()["candidate"] == before != "pages-xycut"
    assert isinstance(after.get_json()["output"], str)
    page = generate_pages(1, OFFLINE_PAGE_MIX, seed=0, split="offline-test")[0]
    read = client.post("/v1/pages", headers=admin,
                       json={**_image(page.image), "page_scope": "pages-xycut"})
    assert read.status_code == 200, read.get_json()
    assert {f["candidate"] for f in read.get_json()["formulas"]} == {before}


def test_page_extractors_alone_leave_the_default_scope_unserved(
        v2app: Flask, extractors: dict[str, Path]) -> None:
    register_bundle(v2app.extensions["abvoc_serving"].registry,
                    Path(v2app.extensions["abvoc"].settings.models_dir), extractors["pages-fcn"])
    formula = _image(next(sample_requests(1, ONLINE_MIX, seed=0)).image)
    answer = v2app.test_client().post("/v1/predict", headers=bearer(v2app, "predict"),
                                      json=formula)
    assert answer.status_code == 503, answer.get_json()
    assert answer.get_json()["error"] == (
        "no candidate that reads formulas or tensors is registered (a page extraction candidate "
        "serves only /v1/pages' page scope); run `abvoc train --all`")
