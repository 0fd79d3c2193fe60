"""GET /v2/models/{scope} describes what the scope serves: the control arm at the version its
experiment pinned, not a newer version registered since (whose URL answered 404)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from tests.support.bundles import copy_example, edit
from tests.support.keys import bearer
from tests.support.v2 import experiment, upload


def test_metadata_names_the_pinned_version(v2app: Flask, tmp_path: Path) -> None:
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    first = copy_example(tmp_path / "v1")
    upload(client, admin, first)
    edit(first, 'name = "iris-onnx"', 'name = "iris-copy"')
    upload(client, admin, first)
    experiment(client, admin, "flowers", "iris-onnx", "iris-copy")
    newer = copy_example(tmp_path / "v5")
    edit(newer, 'version = "1"', 'version = "5"')
    upload(client, admin, newer)

    shown = client.get("/v2/models/flowers", headers=admin)
    assert shown.status_code == 200, shown.get_json()
    assert shown.get_json()["versions"] == ["1"]
    assert shown.get_json()["parameters"] == {"candidate": "iris-onnx"}
    assert client.get("/v2/models/flowers/ready", headers=admin).status_code == 200
