"""Which status a local candidate's failure gets, and that the README says so: a stage that
raised is a 500, an answer that is no valid value of its output type (a label not among its
classes) a 502, as a remote's is; neither says "try again", both are recorded as failures. The
README named only the 500 for a local candidate, so its 502 read as a remote's error."""

from __future__ import annotations

import shutil
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from core.store.models import ServedPrediction
from tests.support.bundles import EXAMPLE
from tests.support.keys import bearer
from tests.support.v2 import flowers, infer_body, upload

README = Path(__file__).resolve().parents[2] / "README.md"


def _bundle(root: Path, name: str, body: str) -> Path:
    """The example bundle named `name`, its post stage's `run` returning `body`."""
    folder = root / name
    shutil.copytree(EXAMPLE, folder)
    with (folder / "post.py").open("a") as post:
        post.write(f"\n\ndef run(tensors):\n    {body}\n")
    manifest = folder / "candidate.toml"
    text = manifest.read_text().replace('name = "iris-onnx"', f'name = "{name}"')
    manifest.write_text(text.replace('"post:to_label"', '"post:run"'))
    return folder


def test_a_local_candidates_failures_are_as_the_readme_says(v2app: Flask, tmp_path: Path) -> None:
    client, admin = v2app.test_client(), bearer(v2app, "admin")
    upload(client, admin, _bundle(tmp_path, "iris-raises", "raise RuntimeError('broken')"))
    upload(client, admin, _bundle(tmp_path, "iris-rose", "return {'label': np.array(['rose'], "
                                                          "dtype=object)}"))
    for scope, status in (("iris-raises", 500), ("iris-rose", 502)):
        answer = client.post(f"/v2/models/{scope}/infer", headers=admin,
                             json=infer_body(flowers(1)[:1], "u1"))
        assert answer.status_code == status, (scope, answer.get_json())
        error = answer.get_json()["error"]
        assert "recorded as its failure" in error and "try again" not in error, error
    with v2app.extensions["abvoc"].db.session() as s:
        assert s.scalars(select(ServedPrediction.error)).all() == [True, True]
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "a local one whose stage raised 500; a candidate, local or remote, whose answer is " \
           "no valid value of its output type (a label not among its classes, one item's " \
           "answer over 10,000 characters, NaN scores) gives 502" in text
    assert 'or a 502 without it when the answer, local or remote, is no valid value of the ' \
           "candidate's output type" in text
