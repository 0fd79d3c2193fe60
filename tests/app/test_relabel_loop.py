"""The relabeling loop end to end on real events, on SQLite and PostgreSQL: predictions (with a
shadow) and corrections through /v2 and /v1/corrections -> outbox -> bus -> worker -> queues ->
labels through the annotation API -> the unbiased audit accuracy and the shadow's accuracy in
/results -> `abvoc relabel export` -> `abvoc offline-test --dataset` on the snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from app.cli import main
from app.openapi import openapi_document
from core.relabel import audited
from core.settings import Settings
from core.store.models import Prediction
from tests.support.bundles import EXAMPLE, copy_example, edit
from tests.support.keys import bearer
from tests.support.v2 import CLASSES, drain, experiment, flowers, infer_body, output_of, upload

N = 16


def conforms(body: dict, schema: str) -> None:
    validator = jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{schema}",
                                             "components": openapi_document()["components"]})
    assert not [e.message for e in validator.iter_errors(body)]


def test_the_relabeling_loop(v2app: Flask, settings: Settings, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    client = v2app.test_client()
    admin, corrector = bearer(v2app, "admin"), bearer(v2app, "correct")
    annotators = [bearer(v2app, "annotate", name="ann-a"), bearer(v2app, "annotate", name="ann-b")]
    upload(client, admin, EXAMPLE)
    shadow = copy_example(tmp_path)
    edit(shadow, 'name = "iris-onnx"', 'name = "iris-shadow"')
    upload(client, admin, shadow)
    exp = experiment(client, admin, "flowers", "iris-onnx", "iris-onnx",
                     shadows=[{"candidate": "iris-shadow"}])
    rules = client.put(f"/v1/relabel/rules?experiment_id={exp['id']}", headers=admin, json={
        "audit_rate": 0.5, "low_confidence_below": None, "divergent_slice_rate": 0.0,
        "second_annotator_share": 0.3})
    assert rules.status_code == 200 and rules.get_json()["rules"]["audit_rate"] == 0.5
    assert client.put("/v1/relabel/rules", headers=annotators[0],
                      json={"audit_rate": 1}).status_code == 403

    served: dict[str, dict] = {}
    rows = flowers(N, seed=11)
    for i, row in enumerate(rows):
        answer = client.post("/v2/models/flowers/infer", headers=admin,
                             json=infer_body(row[None], f"u{i}"))
        assert answer.status_code == 200, answer.get_json()
        params = answer.get_json()["parameters"]
        served[params["prediction_id"]] = {"output": output_of(answer.get_json()), "row": row,
                                           "receipt": params["receipt"]}
    corrected = {}
    for pid in list(served)[:4]:
        other = next(c for c in CLASSES if c != served[pid]["output"])
        response = client.post("/v1/corrections", headers=corrector, json={
            "prediction_id": pid, "receipt": served[pid]["receipt"], "corrected_output": other})
        assert response.status_code == 202
        corrected[pid] = other
    drain(v2app, 2 * N)  # the served answers and the shadow's

    audit = {pid for pid in served if audited(pid, 0.5)}
    figures = {q["queue"]: q for q in
               client.get("/v1/relabel/queues", headers=annotators[0]).get_json()["queues"]}
    assert figures["verification"]["open"] == 4
    assert figures["offline-test"]["items"] == len(audit) and audit

    # The annotators' truth: a correction is right; one audited answer is wrong.
    wrong = sorted(audit - set(corrected))[0]
    truth = {pid: corrected.get(pid, served[pid]["output"]) for pid in served}
    truth[wrong] = next(c for c in CLASSES if c != served[wrong]["output"])
    labeled, idle = 0, 0
    while idle < len(annotators):
        idle = 0
        for who in annotators:
            claim = client.post("/v1/relabel/claim", headers=who, json={})
            item = claim.get_json()["item"]
            if item is None:
                idle += 1
                continue
            conforms(item, "RelabelItemView")
            assert item["input"]["kind"] == "tensors"
            sent = served[item["prediction_id"]]["row"].tolist()
            assert item["input"]["tensors"][0]["data"] == pytest.approx(sent)
            assert item["shadows"][0]["candidate"] == "iris-shadow"
            assert item["classes"] == CLASSES
            done = client.post(f"/v1/relabel/items/{item['id']}/label", headers=who,
                               json={"label": truth[item["prediction_id"]]})
            assert done.status_code == 200, done.get_json()
            labeled += 1
    assert labeled >= len(audit) + 4
    agreement = client.get("/v1/relabel/agreement", headers=admin).get_json()
    assert agreement["exact_agreement"] in (None, 1.0)

    results = client.get(f"/v1/experiments/{exp['id']}/results", headers=admin).get_json()
    accuracy = results["online_accuracy"]
    assert "never the candidate's accuracy" in accuracy["note"]
    arms = [accuracy["variants"][a]["slices"]["all"] for a in ("control", "treatment")]
    n_audit = sum(a["audit"]["n"] for a in arms)
    correct = sum(a["audit"]["correct"] for a in arms)
    assert n_audit == len(audit)
    assert correct == sum(truth[p] == served[p]["output"] for p in audit)
    for a in arms:
        assert "uniform" in a["audit"]["sample"] and a["correction_bound"]["accuracy"] <= 1
        assert "biased low" in a["labeled"]["bias"]
    per_candidate = accuracy["candidates"]["iris-onnx"]["all"]
    assert (per_candidate["n"], per_candidate["correct"]) == (n_audit, correct)
    shadow_fig = accuracy["variants"]["shadow:iris-shadow"]["slices"]["all"]["audit"]
    assert shadow_fig["n"] == len(audit)  # scored on its served twins' labels
    assert shadow_fig["correct"] == correct  # the same model answers the same
    assert shadow_fig["ci"][0] <= shadow_fig["accuracy"] <= shadow_fig["ci"][1]

    monkeypatch.setenv("ABVOC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    out = runner.invoke(main, ["relabel", "export", "flowers-audit", "--out", str(tmp_path / "ds"),
                               "--queue", "offline-test", "--json"])
    assert out.exit_code == 0, out.output
    snapshot = json.loads(out.stdout)
    assert snapshot["examples"] == len(audit) and snapshot["version"] == 1
    manifest = Path(snapshot["path"]) / "manifest.jsonl"
    tested = runner.invoke(main, ["offline-test", "iris-onnx", "--dataset", str(manifest),
                                  "--json"])
    assert tested.exit_code == 0, tested.output
    offline = json.loads(tested.stdout)["overall"]
    assert offline["n"] == len(audit)
    assert offline["accuracy"] == pytest.approx(correct / n_audit, abs=1e-4)  # rounded
    with v2app.extensions["abvoc"].db.session() as s:
        assert s.scalar(select(Prediction.prediction_id).where(Prediction.shadow.is_(True))
                        .limit(1)) is not None
