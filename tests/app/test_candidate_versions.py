"""Candidate versions: an experiment keeps the versions it was made with when a newer one is
registered, while traffic outside experiments moves to the newest without a restart; a named
version that is unknown or retired is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from tests.support.bundles import EXAMPLE
from tests.support.v2 import experiment, flowers, infer_body, output_of, upload

UPPER = ["SETOSA", "VERSICOLOR", "VIRGINICA"]


def version_2(tmp_path: Path) -> Path:
    """The example bundle as version 2, answering its classes in capitals: which version
    answered is then visible in every answer."""
    folder = Path(shutil.copytree(EXAMPLE, tmp_path / "v2" / "iris-onnx"))
    manifest = folder / "candidate.toml"
    manifest.write_text(manifest.read_text().replace('version = "1"', 'version = "2"')
                        .replace('["setosa", "versicolor", "virginica"]', repr(UPPER)
                                 .replace("'", '"')))
    post = folder / "post.py"
    post.write_text(post.read_text().replace('["setosa", "versicolor", "virginica"]',
                                             repr(UPPER)))
    return folder


def labels(client: FlaskClient, headers: dict, scope: str, n: int = 12) -> set[str]:
    out = set()
    for i, row in enumerate(flowers(n, seed=3)):
        answer = client.post(f"/v2/models/{scope}/infer", headers=headers,
                             json=infer_body(row[None], unit=f"user-{i}"))
        assert answer.status_code == 200, answer.get_json()
        out.add(output_of(answer.get_json()))
    return out


def test_running_experiments_keep_their_version(app: Flask, client: FlaskClient, admin: dict,
                                                predictor: dict, tmp_path: Path) -> None:
    serving = app.extensions["abvoc_serving"]
    serving.pool.refresh_s = 0.0  # look the newest version up on every request
    serving.predict.settings = serving.predict.settings.with_overrides(
        default_candidate="iris-onnx")
    upload(client, admin, EXAMPLE)
    exp = experiment(client, admin, "flowers", "iris-onnx", "iris-onnx")
    assert [a["version"] for a in exp["arms"]] == ["1", "1"]
    assert labels(client, predictor, "default") <= {"setosa", "versicolor", "virginica"}

    upload(client, admin, version_2(tmp_path))
    in_experiment = labels(client, predictor, "flowers")
    outside = labels(client, predictor, "default")
    assert in_experiment and in_experiment <= {"setosa", "versicolor", "virginica"}
    assert outside and outside <= set(UPPER)
    shown = client.get(f"/v1/experiments/{exp['id']}", headers=admin).get_json()
    assert [a["version"] for a in shown["arms"]] == ["1", "1"]


def test_a_named_version_must_be_registered_and_active(client: FlaskClient, admin: dict,
                                                       tmp_path: Path) -> None:
    upload(client, admin, EXAMPLE)
    upload(client, admin, version_2(tmp_path))

    def create(version: str) -> tuple[int, str]:
        body = {"name": f"pinned-{version}", "scope": f"s-{version}", "arms": [
            {"name": "control", "candidate": "iris-onnx", "version": "1", "weight": 1,
             "control": True},
            {"name": "treatment", "candidate": "iris-onnx", "version": version, "weight": 1}]}
        response = client.post("/v1/experiments", json=body, headers=admin)
        return response.status_code, response.get_json().get("error", "")

    status, error = create("7")
    assert status == 400 and "version '7' is not registered" in error
    assert client.post("/v1/candidates/iris-onnx/retire?version=2",
                       headers=admin).status_code == 200
    status, error = create("2")
    assert status == 400 and "version '2' is retired" in error
    status, _ = create("1")
    assert status == 201
