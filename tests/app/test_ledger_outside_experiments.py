"""A request served outside any experiment (a scope named after its candidate, or `default`)
is the candidate's real traffic: its ledger row carries its latency and whether it failed, as a
routed request's does. It kept neither, so Operations showed "–" for the error rate and latency
of every candidate served without an experiment, and said its requests were forced (QA) ones or
shadow copies."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from sqlalchemy import select

from core.store.models import ServedPrediction
from dashboards import operations as ops
from dashboards.pages import operations as operations_page
from tests.support.bundles import EXAMPLE
from tests.support.dash_tree import find_component
from tests.support.keys import bearer
from tests.support.ports import free_port
from tests.support.v2 import flowers, infer_body, remote_bundle, upload


def test_requests_outside_experiments_keep_their_latency_and_failure(
        v2app: Flask, tmp_path: Path) -> None:
    client, admin = v2app.test_client(), bearer(v2app, "admin")
    predictor = bearer(v2app, "predict")
    upload(client, admin, EXAMPLE)
    dead = remote_bundle(tmp_path, "iris-dead", f"http://127.0.0.1:{free_port()}",
                         timeout_ms=500)
    upload(client, admin, dead, check_remote=False)
    for i, row in enumerate(flowers(3)):
        answer = client.post("/v2/models/iris-onnx/infer", headers=predictor,
                             json=infer_body(row, f"u{i}"))
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["parameters"].get("experiment_id") is None
    failed = client.post("/v2/models/iris-dead/infer", headers=predictor,
                         json=infer_body(flowers(1)[0], "u9"))
    assert failed.status_code == 503, failed.get_json()

    db = v2app.extensions["abvoc"].db
    with db.reading() as s:
        rows = s.execute(select(ServedPrediction.candidate, ServedPrediction.experiment_id,
                                ServedPrediction.latency_ms, ServedPrediction.error)).all()
    assert sorted((r.candidate, r.experiment_id, r.error) for r in rows) == [
        ("iris-dead", None, True), *[("iris-onnx", None, False)] * 3]
    assert all(r.latency_ms is not None and r.latency_ms >= 0 for r in rows), rows

    recent = {r["candidate"]: r for r in ops.recent(db)}
    assert (recent["iris-onnx"]["requests"], recent["iris-onnx"]["watched"]) == (3, 3)
    assert recent["iris-onnx"]["error_rate"] == 0 and recent["iris-onnx"]["latency_p50_ms"]
    assert recent["iris-dead"]["error_rate"] == 1.0
    assert find_component(operations_page.traffic(db, None, None), "ops-unwatched") is None
