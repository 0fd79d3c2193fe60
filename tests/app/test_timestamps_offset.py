"""Every experiment timestamp the API returns carries its UTC offset: start (a row reread from
SQLite, which hands times back naive) used to return `created_at` without the '+00:00' that
create returned."""

from __future__ import annotations

from datetime import datetime

from flask import Flask

from tests.support.bundles import EXAMPLE
from tests.support.keys import bearer
from tests.support.v2 import upload


def _aware(value: str | None) -> bool:
    return value is not None and datetime.fromisoformat(value).utcoffset() is not None


def test_create_start_and_read_all_return_offsets(v2app: Flask) -> None:
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload(client, admin, EXAMPLE)
    body = {"name": "offsets", "scope": "flowers", "arms": [
        {"name": "control", "candidate": "iris-onnx", "weight": 0.5, "control": True},
        {"name": "treatment", "candidate": "iris-onnx", "weight": 0.5}]}
    created = client.post("/v1/experiments", json=body, headers=admin)
    assert created.status_code == 201, created.get_json()
    exp_id = created.get_json()["id"]
    assert _aware(created.get_json()["created_at"])
    started = client.post(f"/v1/experiments/{exp_id}/start", headers=admin)
    assert started.status_code == 200, started.get_json()
    view = started.get_json()
    assert _aware(view["created_at"]) and _aware(view["started_at"]), view
    read = client.get(f"/v1/experiments/{exp_id}", headers=admin).get_json()
    assert _aware(read["created_at"]) and _aware(read["started_at"]), read
