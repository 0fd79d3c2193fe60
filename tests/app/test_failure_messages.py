"""A candidate that fails tells a predict key only what it can act on (status, the recorded
prediction id and its receipt, whether to try again); its internals (a remote's URL credentials
and body, a stage's exception and paths) reach admin keys and the log only. Found by a security
pass: a predict key read a remote URL's password and a server's config path from a 502."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from serving.remote import RemoteClient
from tests.support.bundles import EXAMPLE
from tests.support.keys import bearer
from tests.support.stub_server import StubServer, reply
from tests.support.v2 import flowers, infer_body, post_bundle, remote_bundle, upload

INTERNALS = "INTERNAL db password=hunter2 at /srv/internal/config.yaml"


def _raising_bundle(root: Path) -> Path:
    """The example bundle whose Python stage raises with a path and a database URL in its words."""
    folder = root / "iris-raising"
    shutil.copytree(EXAMPLE, folder)
    with (folder / "post.py").open("a") as post:
        post.write("\n\ndef boom(tensors):\n    raise RuntimeError("
                   "'cannot read /srv/team/post.py; DATABASE_URL=sqlite:////srv/x.db')\n")
    manifest = folder / "candidate.toml"
    text = manifest.read_text().replace('name = "iris-onnx"', 'name = "iris-raising"')
    manifest.write_text(text.replace('"post:to_label"', '"post:boom"'))
    return folder


@pytest.mark.parametrize("failure", ["remote 500", "remote 429", "remote 422", "remote 404",
                                     "raising stage"])
def test_a_predict_key_gets_no_candidate_internals_but_an_admin_does(
        v2app: Flask, stub_server: Callable[..., StubServer], tmp_path: Path, failure: str,
        caplog: pytest.LogCaptureFixture) -> None:
    client = v2app.test_client()
    admin, predictor = bearer(v2app, "admin"), bearer(v2app, "predict")
    upload(client, admin, EXAMPLE)
    remote = failure.startswith("remote")
    if remote:  # a 422's body reached a predict key as it was
        code = int(failure.split()[1])
        bad = stub_server(lambda h, body: reply(h, code, {"error": INTERNALS}))
        url = bad.url.replace("http://", "http://svc:s3cretpw@")
        upload(client, admin, remote_bundle(tmp_path, "iris-broken", url, timeout_ms=2000),
               check_remote=False)
        secrets_ = ("s3cretpw", "svc:", "hunter2", "/srv/internal", "iris-broken")
    else:
        upload(client, admin, _raising_bundle(tmp_path))  # the newest: the default candidate
        secrets_ = ("RuntimeError", "/srv/team", "DATABASE_URL", "iris-raising")
    body = infer_body(flowers(1)[0][None], "unit-1", id="req-7")
    with caplog.at_level(logging.WARNING):
        shown = client.post("/v2/models/default/infer", headers=predictor, json=body)
    assert shown.status_code == (502 if remote else 500), shown.get_json()
    error = shown.get_json()["error"]
    assert "failed to answer" in error and "recorded" in error
    # A server's error or its "too many requests" may pass; a stage that raised, a refused
    # input or a model the server does not have (404) fails again.
    assert ("try again" in error) == (failure in ("remote 500", "remote 429")), error
    assert "req-7" in error
    for secret in secrets_:
        assert secret not in error, (secret, error)

    told = client.post("/v2/models/default/infer", headers=admin, json=body)
    detail = told.get_json()["error"]
    assert told.status_code == shown.status_code and "recorded" in detail
    assert "req-7" in detail  # an admin's words name the request too
    assert ("hunter2" if remote else "DATABASE_URL") in detail
    logged = caplog.text
    assert ("hunter2" if remote else "/srv/team") in logged
    assert "s3cretpw" not in detail and "s3cretpw" not in logged


def test_a_remote_url_s_credentials_are_never_in_its_messages() -> None:
    client = RemoteClient("http://svc:s3cretpw@127.0.0.1:9/", "iris", timeout_ms=200)
    try:
        with pytest.raises(Exception) as failed:
            client.infer({"x": flowers(1)})
        assert "s3cretpw" not in str(failed.value) and "svc" not in str(failed.value)
        assert "http://***@127.0.0.1:9" in str(failed.value)
    finally:
        client.close()


def test_a_failed_prediction_s_receipt_lets_its_truth_be_given(
        v2app: Flask, tmp_path: Path) -> None:
    """The error carries the failed prediction's id and receipt, so a correction (the input's
    truth) is accepted for it, as for any recorded prediction."""
    client = v2app.test_client()
    admin, predictor = bearer(v2app, "admin"), bearer(v2app, "predict")
    upload(client, admin, _raising_bundle(tmp_path))
    failed = client.post("/v2/models/default/infer", headers=predictor,
                         json=infer_body(flowers(1)[0][None], "unit-1"))
    assert failed.status_code == 500, failed.get_json()
    details = failed.get_json()["details"]
    assert details["prediction_id"] in failed.get_json()["error"]
    corrected = client.post("/v1/corrections", headers=bearer(v2app, "correct"), json={
        "prediction_id": details["prediction_id"], "receipt": details["receipt"],
        "corrected_output": "setosa"})
    assert corrected.status_code == 202, corrected.get_json()
    forged = client.post("/v1/corrections", headers=bearer(v2app, "correct"), json={
        "prediction_id": details["prediction_id"], "receipt": "0" * 64,
        "corrected_output": "setosa"})
    assert forged.status_code == 403, forged.get_json()


def test_stages_that_do_not_chain_are_the_candidates_failure(v2app: Flask,
                                                              tmp_path: Path) -> None:
    """A second ONNX stage needs `features`, which the stage before it does not give: every
    request was a 400 telling the caller to fix an input that matched the manifest. Where both
    stages name their tensors, registration refuses it; behind a Python stage (whose outputs
    are known only when it runs) it is the candidate's failure, a 500."""
    folder = tmp_path / "iris-twice"
    shutil.copytree(EXAMPLE, folder)
    manifest = folder / "candidate.toml"
    again = ('[[stages]]\nname = "again"\nkind = "onnx"\npath = "model.onnx"\n\n'
             '[[stages]]\nname = "to_label"')
    text = manifest.read_text().replace('name = "iris-onnx"', 'name = "iris-twice"')
    manifest.write_text(text.replace('[[stages]]\nname = "to_label"', again))
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    refused = post_bundle(client, admin, folder)
    assert refused.status_code == 400, refused.get_json()
    assert "stages[1] 'again' takes 'features', which stage 'classifier' before it does not " \
        "give" in refused.get_json()["error"]
    with open(folder / "post.py", "a") as post:
        post.write("\n\ndef keep(tensors):\n    return {'probabilities': "
                   "tensors['probabilities']}\n")
    manifest.write_text(text.replace('[[stages]]\nname = "to_label"',
                                     '[[stages]]\nname = "keep"\nkind = "python"\n'
                                     'callable = "post:keep"\n\n' + again))
    upload(client, admin, folder)
    told = client.post("/v2/models/iris-twice/infer", headers=admin,
                       json=infer_body(flowers(1)[0][None], "unit-1"))
    assert told.status_code == 500, told.get_json()
    assert "failed to answer" in told.get_json()["error"]
    assert "stages before it did not give" in told.get_json()["error"]

