"""Serving while another process holds the SQLite store's write lock (a long write, a backup):
with the request spool on (SQLite's default) no request waits for the store's writer."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from core.store.db import sqlite_file
from core.store.models import ServedPrediction
from tests.app.test_predict_flow import predict
from tests.support.bundles import EXAMPLE
from tests.support.v2 import flowers, infer_body, upload

QUICK_S = 1.5  # a read may wait BARRIER_TIMEOUT_S (1 s) for the spool; never the writer


@contextmanager
def _exclusive(path: str, seconds: float) -> Iterator[None]:
    """A second connection holds `BEGIN EXCLUSIVE` for `seconds` on its own thread."""
    taken = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            taken.set()
            time.sleep(seconds)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(10)
    try:
        yield
    finally:
        holder.join()


def _timed(call: Callable[[], TestResponse]) -> tuple[float, TestResponse]:
    start = time.perf_counter()
    response = call()
    return time.perf_counter() - start, response


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_requests_answer_at_once_while_another_process_holds_the_store(
        app: Flask, client: FlaskClient, admin: dict) -> None:
    """A running canary made every router reload (each second; each request in tests) try its
    step, a write, under the router's lock: behind a foreign lock /v1/predict, /v2 infer and
    /v2 ready waited for the lock to go. Now each answers in normal time, and every answer is
    in the store once after the lock goes."""
    upload(client, admin, EXAMPLE)
    created = client.post("/v1/experiments", headers=admin, json={
        "name": "ramp", "arms": [
            {"name": "control", "candidate": "ocr-small-printed", "weight": 0.5,
             "control": True},
            {"name": "mixed", "candidate": "ocr-small-mixed", "weight": 0.5}],
        "canary": {"treatment": "mixed", "steps": [0.1, 0.5], "advance_after_s": 3600}})
    assert created.status_code == 201, created.get_json()
    started = client.post(f"/v1/experiments/{created.get_json()['id']}/start", headers=admin)
    assert started.status_code == 200, started.get_json()
    rows = flowers(8, seed=3)

    def infer(i: int) -> TestResponse:
        return client.post("/v2/models/iris-onnx/infer", headers=admin,
                           json=infer_body(rows[i][None], f"user-{i}"))

    def ready() -> TestResponse:
        return client.get("/v2/models/iris-onnx/ready", headers=admin)

    assert infer(0).status_code == 200 and ready().status_code == 200  # lookups cached
    assert predict(client, admin, unit="warm").status_code == 200
    path = sqlite_file(app.extensions["abvoc"].settings.database_url)
    assert path is not None
    ids, took = [], []
    with _exclusive(path, 4.0):
        for i in range(1, 4):
            for call in (lambda i=i: infer(i), ready,
                         lambda i=i: predict(client, admin, unit=f"u{i}", seed=i)):
                seconds, response = _timed(call)
                took.append(seconds)
                assert response.status_code == 200, response.get_json()
                body = response.get_json()
                given = body.get("parameters", body).get("prediction_id")
                ids += [given] if given else []
            time.sleep(0.3)
    assert max(took) < QUICK_S, took
    assert len(ids) == 6  # three /v2 infer and three /v1/predict answers
    with app.extensions["abvoc"].db.reading() as s:  # waits for this process's spool
        counts = dict(s.execute(
            select(ServedPrediction.prediction_id, func.count())
            .where(ServedPrediction.prediction_id.in_(ids))
            .group_by(ServedPrediction.prediction_id)).all())
    assert counts == dict.fromkeys(ids, 1)
