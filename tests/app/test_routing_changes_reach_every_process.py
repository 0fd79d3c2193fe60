"""A kill, a pause or an arm's pause made through one API process is how every other process
on the store routes from the very next request: each kept its experiments for a refresh period
(a second), so the other process went on serving the treatment, counted in the results, after
the kill's 200 (serving/route_changes.py). Both apps here keep their experiments for an hour:
only the change's notice can have told the second one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import close_app, create_app
from core.settings import Settings
from tests.support.keys import bearer
from tests.support.v2 import experiment, flowers, infer_body, upload_two_iris

UNITS = [f"u{i}" for i in range(40)]


@pytest.fixture
def two_apps(settings: Settings) -> Iterator[tuple[Flask, Flask]]:
    """Two API processes' apps on one store, neither reloading on its own for an hour."""
    config = {"TESTING": True, "ROUTER_REFRESH_S": 3600.0}
    first = create_app(settings, test_config=config)
    second = create_app(settings, test_config=config)
    yield first, second
    close_app(second)
    close_app(first)


def served(client: FlaskClient, admin: dict, unit: str) -> dict[str, Any]:
    row = flowers(1, seed=len(unit))[0]
    answer = client.post("/v2/models/split/infer", headers=admin, json=infer_body(row[None], unit))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["parameters"]


def test_a_change_through_one_process_routes_the_next_request_of_another(
        two_apps: tuple[Flask, Flask], tmp_path: Path) -> None:
    first, second = two_apps
    one, other = first.test_client(), second.test_client()
    admin = bearer(first, "admin", "predict")
    upload_two_iris(one, admin, tmp_path)
    exp = experiment(one, admin, "split", "iris-b", "iris-onnx")
    before = {u: served(other, admin, u)["arm"] for u in UNITS}
    treated = [u for u, arm in before.items() if arm == "treatment"]
    assert treated and len(treated) < len(UNITS)

    for verb in ("kill", "pause"):
        assert one.post(f"/v1/experiments/{exp['id']}/{verb}", headers=admin).status_code == 200
        after = [served(other, admin, u) for u in treated]
        assert {p["arm"] for p in after} == {"control"}, verb
        assert all("kept out of experiment" in p["excluded"] for p in after), verb
        assert all(p["experiment_id"] is None for p in after), verb
        assert one.post(f"/v1/experiments/{exp['id']}/resume",
                        headers=admin).status_code == 200
        again = [served(other, admin, u) for u in treated]
        assert {p["arm"] for p in again} == {"treatment"}
        assert not any("excluded" in p for p in again)

    paused = one.post(f"/v1/experiments/{exp['id']}/arms/treatment/pause", headers=admin)
    assert paused.status_code == 200
    assert {served(other, admin, u)["arm"] for u in treated} == {"control"}
    assert {served(one, admin, u)["arm"] for u in treated} == {"control"}
