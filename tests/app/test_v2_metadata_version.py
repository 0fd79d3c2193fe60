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
    assert shown.get_json()["parameters"] == {"candidate": "iris-onnx", "candidate_version": "1"}
    assert client.get("/v2/models/flowers/ready", headers=admin).status_code == 200


def test_metadata_lists_no_version_the_versioned_routes_refuse(v2app: Flask,
                                                               tmp_path: Path) -> None:
    """The protocol's `versions` are those a client may request by URL; a scope has none (its
    /versions/{v}/ routes answer 404), so the metadata lists none: the candidate's version is
    a parameter, for admin keys."""
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload(client, admin, copy_example(tmp_path / "v1"))
    shown = client.get("/v2/models/default", headers=admin).get_json()
    assert "versions" not in shown
    assert shown["parameters"] == {"candidate": "iris-onnx", "candidate_version": "1"}
    assert client.get("/v2/models/default/versions/1", headers=admin).status_code == 404
