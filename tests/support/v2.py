"""Helpers for the /v2 tests: an app with no built-in candidates, bundles uploaded through the
public API, V2 requests, and the outbox → bus → worker drain."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.outbox import OutboxRelay
from core.store.models import OutboxEvent, ParkedEvent, Prediction, ProcessedEvent
from evaluation.worker import make_worker
from tests.support.bundles import EXAMPLE, copy_example, edit

CLASSES = ["setosa", "versicolor", "virginica"]


def flowers(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(5.0, 1.8, size=(n, 4)).astype(np.float32)


def upload_two_iris(client: FlaskClient, admin: dict, root: Path) -> None:
    """Register the example bundle and a copy of it named `iris-b` (an experiment's two
    arms), the copy first: the example is then the newest, the default candidate."""
    second = copy_example(root)
    edit(second, 'name = "iris-onnx"', 'name = "iris-b"')
    upload(client, admin, second)
    upload(client, admin, EXAMPLE)


def upload(client: FlaskClient, admin: dict, folder: Path, *,
           check_remote: bool = True) -> dict[str, Any]:
    """Register a bundle folder through POST /v1/candidates, as a team would (`check_remote`
    off: a [remote] one without asking its server, as for a server meant to fail)."""
    query = "" if check_remote else "?check_remote=false"
    response = post_bundle(client, admin, folder, query)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def post_bundle(client: FlaskClient, admin: dict, folder: Path, query: str = "") -> Any:
    """POST /v1/candidates with the folder as a .tar.gz upload; the response, as it is."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return client.post(f"/v1/candidates{query}", headers=admin,
                       content_type="multipart/form-data",
                       data={"bundle": (io.BytesIO(buffer.getvalue()), "bundle.tar.gz")})


def remote_bundle(root: Path, name: str, url: str, *, timeout_ms: int = 5000,
                  retries: int = 0) -> Path:
    """A [remote] bundle: the iris model behind an Open Inference Protocol endpoint."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "candidate.toml").write_text(f"""name = "{name}"
version = "1"
[[inputs]]
name = "features"
datatype = "FP32"
shape = [-1, 4]
[output]
type = "label"
classes = {CLASSES!r}
[remote]
url = "{url}"
model = "iris"
timeout_ms = {timeout_ms}
retries = {retries}
""".replace("'", '"'))
    return folder


def experiment(client: FlaskClient, admin: dict, scope: str, control: str, treatment: str,
               **spec: Any) -> dict[str, Any]:
    body = {"name": f"{scope}-test", "scope": scope, **spec, "arms": [
        {"name": "control", "candidate": control, "weight": 0.5, "control": True},
        {"name": "treatment", "candidate": treatment, "weight": 0.5}]}
    created = client.post("/v1/experiments", json=body, headers=admin)
    assert created.status_code == 201, created.get_json()
    exp = created.get_json()
    started = client.post(f"/v1/experiments/{exp['id']}/start", headers=admin)
    assert started.status_code == 200, started.get_json()
    return exp


def infer_body(row: np.ndarray, unit: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": [{"name": "features", "datatype": "FP32",
                                        "shape": [1, 4], "data": row.tolist()}], **extra}
    if unit is not None:
        body.setdefault("parameters", {})["unit_id"] = unit
    return body


def output_of(answer: dict[str, Any]) -> str:
    """The `output` tensor's one value (a label: BYTES, as text unless asked as base64)."""
    import base64

    tensor = next(t for t in answer["outputs"] if t["name"] == "output")
    if tensor["parameters"]["content_type"] == "base64":
        return base64.b64decode(tensor["data"][0]).decode()
    assert tensor["parameters"]["content_type"] == "str"
    return tensor["data"][0]


def stored_predictions(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Prediction)) or 0


def drain(app: Flask, expected: int, timeout_s: float = 90.0,
          count: Callable[[Session], int] = stored_predictions, what: str = "predictions") -> None:
    """Relay the outbox and run the evaluation worker until `count` reaches `expected` (by
    default: predictions stored), then until every event in the outbox has been applied or
    parked (the corrections and outcomes on their own topics too)."""
    services = app.extensions["abvoc"]
    relay = OutboxRelay(services.db, services.bus)
    worker = make_worker(services.db, services.bus, services.settings.topic_prefix,
                         secret=services.settings.secret_key)
    deadline = time.monotonic() + timeout_s
    done, left = 0, None
    try:
        while time.monotonic() < deadline:
            while relay.relay_once():
                pass
            worker.step(timeout_ms=200)
            with services.db.session() as s:
                done = count(s)
                left = _unapplied(s) if done >= expected else None
            if left == 0:
                return
    finally:
        worker.close()
    if left is not None:
        raise AssertionError(f"{left} events in the outbox were neither applied nor parked")
    raise AssertionError(f"only {done} of {expected} {what} reached the store")


def _unapplied(session: Session) -> int:
    """Outbox events no consumer group has applied or parked yet."""
    applied = sum(session.scalar(select(func.count()).select_from(t)) or 0
                  for t in (ProcessedEvent, ParkedEvent))
    return max(0, (session.scalar(select(func.count()).select_from(OutboxEvent)) or 0) - applied)
