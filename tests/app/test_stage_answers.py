"""A bundle whose classifier stage declares its answer: each prediction records what the
classifier and the post stage answered (batched or not), and corrections blame the stage that
erred, through /v2, the outbox, the bus, the worker and /divergence; the relabeling rules route
the post stage's errors to its own dataset queue."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from app.cli import main as abvoc
from core.settings import Settings
from core.store.models import Prediction, RelabelItem
from dashboards import feeds
from serving.bundles import BundleRunner
from tests.support.bundles import EXAMPLE, edit
from tests.support.keys import bearer
from tests.support.v2 import CLASSES, drain, experiment, flowers, infer_body, output_of, upload

# The post stage has a bug: it reads virginica as versicolor. The classifier's own answer says
# which errors are the model's and which the post stage's.
BUGGY_POST = '''
import numpy as np

CLASSES = np.array(["setosa", "versicolor", "versicolor"], dtype=object)


def to_label(tensors):
    probabilities = tensors["probabilities"]
    return {"label": CLASSES[probabilities.argmax(axis=-1)],
            "confidence": probabilities.max(axis=-1).astype(np.float32)}
'''


def staged_bundle(root: Path) -> Path:
    folder = Path(shutil.copytree(EXAMPLE, root / "iris-staged"))
    edit(folder, 'name = "iris-onnx"', 'name = "iris-staged"')
    edit(folder, 'path = "model.onnx"', 'path = "model.onnx"\nanswer = "probabilities"')
    (folder / "post.py").write_text(BUGGY_POST)
    return folder


def model_classes(rows: np.ndarray) -> list[str]:
    bare = ort.InferenceSession(str(EXAMPLE / "model.onnx"), providers=["CPUExecutionProvider"])
    return [CLASSES[i] for i in bare.run(["probabilities"], {"features": rows})[0].argmax(1)]


def served(model: str) -> str:
    return "versicolor" if model == "virginica" else model


def test_batched_requests_each_get_their_own_stage_answers(tmp_path: Path) -> None:
    rows = flowers(64, seed=3)
    with BundleRunner.open(staged_bundle(tmp_path)) as runner:
        assert runner.manifest.batching.max_batch_size > 1
        with ThreadPoolExecutor(16) as pool:
            traced = list(pool.map(lambda r: runner.predict_traced({"features": r[None]}), rows))
        plain = runner.predict({"features": rows[:1]})
    assert set(plain) == {"label", "confidence"}  # the answers ride along only when traced
    for (outputs, answers), model in zip(traced, model_classes(rows), strict=True):
        assert set(answers) == {"classifier"} and answers["classifier"].shape == (1, 3)
        assert CLASSES[int(answers["classifier"].argmax())] == model
        assert outputs["label"][0] == served(model)


def test_corrections_blame_the_classifier_or_the_post_stage(v2app: Flask, tmp_path: Path,
                                                             settings: Settings) -> None:
    client = v2app.test_client()
    db = v2app.extensions["abvoc"].db
    admin = bearer(db, "admin")
    upload(client, admin, staged_bundle(tmp_path))
    upload(client, admin, EXAMPLE)
    exp = experiment(client, admin, "flowers", "iris-staged", "iris-onnx")
    ruled = client.put("/v1/relabel/rules?candidate=iris-staged", headers=admin,
                       json={"stage_datasets": ["to_label"]})
    assert ruled.status_code == 200, ruled.get_json()
    rows = flowers(160, seed=5)
    expected: Counter = Counter()
    answered, post_errors = [], set()
    for i, (row, model) in enumerate(zip(rows, model_classes(rows), strict=True)):
        response = client.post("/v2/models/flowers/infer", headers=admin,
                               json=infer_body(row[None], f"user-{i}"))
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        staged = body["parameters"]["candidate"] == "iris-staged"
        assert output_of(body) == (served(model) if staged else model)
        # every fourth customer says the model itself was wrong; the rest give its class
        truth = CLASSES[(CLASSES.index(model) + 1) % 3] if i % 4 == 0 else model
        if staged:
            expected["classifier" if truth != model else
                     "to_label" if truth != served(model) else "correct"] += 1
        corrected = client.post("/v1/corrections", headers=admin, json={
            "prediction_id": body["parameters"]["prediction_id"],
            "receipt": body["parameters"]["receipt"], "corrected_output": truth})
        assert corrected.status_code == 202, corrected.get_json()
        answered.append((body["parameters"]["prediction_id"], model, staged))
        if staged and truth == model != served(model):
            post_errors.add(body["parameters"]["prediction_id"])
    assert expected["classifier"] and expected["to_label"] and expected["correct"]

    drain(v2app, len(rows))
    with db.session() as s:
        recorded = dict(s.execute(select(Prediction.prediction_id, Prediction.stages)).all())
        routed = set(s.scalars(select(RelabelItem.prediction_id)
                               .where(RelabelItem.queue == "stage:to_label")))
    assert routed == post_errors and len(post_errors) == expected["to_label"]
    # the Inspector's feed names the stage blamed for one of them
    assert feeds.prediction(db, sorted(post_errors)[0])["blamed"] == "to_label"
    for pid, model, staged in answered:
        assert recorded[pid] == ({"answers": [
            {"stage": "classifier", "answer": model},
            {"stage": "to_label", "answer": served(model)}]} if staged else {})

    report = client.get(f"/v1/experiments/{exp['id']}/divergence", headers=admin)
    assert report.status_code == 200, report.get_json()
    rows_ = report.get_json()["stage_attribution"]["rows"]
    # the plain bundle declares no answers: nothing to blame, so no row (right or wrong)
    assert {r["candidate"] for r in rows_} == {"iris-staged"}
    assert report.get_json()["stage_attribution"]["stages"] == ["classifier", "to_label"]
    overall = next(r for r in rows_ if r["slice"] == "all")
    assert overall["stages"] == ["classifier", "to_label"]
    assert overall["counts"] == {"classifier": expected["classifier"],
                                 "to_label": expected["to_label"]}
    assert overall["with_truth"] == sum(expected.values())
    assert overall["top_stage"] == max(("classifier", "to_label"), key=expected.__getitem__)

    # The command line prints the same reports as the API, and a summary a person reads.
    cli_env = {"ABVOC_DATABASE_URL": settings.database_url}
    for command, url in (("divergence", "divergence"), ("results", "results")):
        printed = CliRunner().invoke(abvoc, ["experiment", command, str(exp["id"]), "--json"],
                                     env=cli_env)
        assert printed.exit_code == 0, printed.output
        api = client.get(f"/v1/experiments/{exp['id']}/{url}", headers=admin).get_json()
        assert json.loads(printed.output) == api
    text = CliRunner().invoke(abvoc, ["experiment", "divergence", str(exp["id"])], env=cli_env)
    share = expected["to_label"] / (expected["classifier"] + expected["to_label"])
    assert f"iris-staged: {expected['classifier'] + expected['to_label']} of " \
           f"{sum(expected.values())} with a truth wrong" in text.output, text.output
    assert f"to_label {share:.0%}" in text.output
    text = CliRunner().invoke(abvoc, ["experiment", "results", str(exp["id"])], env=cli_env)
    assert "decision " in text.output and "sample-ratio check: " in text.output, text.output
    # The confirming corrections are not errors: the bound is the share not known wrong.
    staged = api["metrics"]["control"]["all"]  # the experiment's control is iris-staged
    assert staged["known_wrong"] == expected["classifier"] + expected["to_label"]
    assert staged["accuracy_bound"] == pytest.approx(1 - staged["known_wrong"]
                                                     / staged["predictions"])
