"""A scope no experiment runs in: served by the candidate named as the scope (a V2 client's model
name), else the configured default, else, for the `default` scope alone, the newest registered
candidate. Any other name is a 404 on every model route, so a mistyped model name is not
answered by whichever candidate a team registered last."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from serving import predict
from tests.support.bundles import EXAMPLE, copy_example, edit
from tests.support.keys import bearer
from tests.support.v2 import experiment, flowers, infer_body, upload

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
