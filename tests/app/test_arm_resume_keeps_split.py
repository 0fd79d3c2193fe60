"""Resuming an arm that is not paused changes nothing, as pausing a paused one does: the split,
its `allocation.since` and so the sample-ratio check's evidence stay (a resume that moved
`since` hid a flagged mismatch until the next hour)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from sqlalchemy import select

from core.store.models import Experiment
from serving.assignment import Allocation, Assigner
from tests.support.keys import bearer
from tests.support.v2 import drain, experiment, flowers, infer_body, upload_two_iris


def _allocation(app: Flask, exp_id: int) -> dict:
    with app.extensions["abvoc"].db.reading() as s:
        return dict(s.scalar(select(Experiment.allocation).where(Experiment.id == exp_id)))


def test_resuming_an_arm_that_is_not_paused_keeps_the_srm_evidence(v2app: Flask,
                                                                   tmp_path: Path) -> None:
    client = v2app.test_client()
    admin, predictor = bearer(v2app, "admin"), bearer(v2app, "predict")
    upload_two_iris(client, admin, tmp_path)
    exp = experiment(client, admin, "skew", "iris-b", "iris-onnx", salt="resume-noop")
    # A broken pipeline: 60 units of control reach the store, only 20 of the treatment.
    assigner = Assigner(Allocation.from_doc(exp["allocation_table"]), exp["salt"])
    units: dict[int, list[str]] = {0: [], 1: []}
    for i in range(1000):
        unit = f"unit-{i}"
        arm = assigner.assign(unit)
        if len(units[arm]) < (60 if arm == 0 else 20):
            units[arm].append(unit)
    rows = flowers(80, seed=3)
    for row, unit in zip(rows, units[0] + units[1], strict=True):
        answer = client.post("/v2/models/skew/infer", headers=predictor,
                             json=infer_body(row[None], unit))
        assert answer.status_code == 200, answer.get_json()
    drain(v2app, 80)

    results = f"/v1/experiments/{exp['id']}/results"
    before = client.get(results, headers=admin).get_json()["srm"]
    assert before["flagged"] and before["units"] == {"control": 60, "treatment": 20}, before
    allocation = _allocation(v2app, exp["id"])
    shown = client.get(f"/v1/experiments/{exp['id']}", headers=admin).get_json()

    resumed = client.post(f"/v1/experiments/{exp['id']}/arms/treatment/resume", headers=admin)
    assert resumed.status_code == 200, resumed.get_json()
    assert resumed.get_json() == shown  # nothing changed, status reason included
    assert _allocation(v2app, exp["id"]) == allocation
    after = client.get(results, headers=admin).get_json()["srm"]
    assert after == before

    # Pausing twice is the same no-op; resuming the paused arm does move the split.
    paused = client.post(f"/v1/experiments/{exp['id']}/arms/treatment/pause", headers=admin,
                         json={"reason": "checking"}).get_json()
    assert paused["weights"] == [1.0, 0.0]
    since = _allocation(v2app, exp["id"])["since"]
    again = client.post(f"/v1/experiments/{exp['id']}/arms/treatment/pause", headers=admin,
                        json={"reason": "other"}).get_json()
    assert again == paused and _allocation(v2app, exp["id"])["since"] == since
    back = client.post(f"/v1/experiments/{exp['id']}/arms/treatment/resume", headers=admin)
    assert back.status_code == 200 and back.get_json()["weights"] == [0.5, 0.5]
    assert not back.get_json()["arms"][1]["paused"]
