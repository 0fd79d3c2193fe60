"""Concurrent requests to a batched candidate: each answer's record (event, ledger row) is made
and committed on the candidate's batcher, the batch's records in one write, before any caller
of the batch gets its answer; every answer is recorded once, none is lost."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, select, text

from app import close_app, create_app
from core.settings import Settings
from core.store.models import (
    CorrectionRequest,
    OutboxEvent,
    PredictionInput,
    ServedPrediction,
)
from serving.predict import PredictService
from tests.serving.test_batching import concurrently
from tests.support.bundles import EXAMPLE, copy_example, edit
from tests.support.keys import bearer
from tests.support.v2 import flowers, infer_body, upload

REQUESTS = 24


def test_a_batch_of_answers_is_recorded_in_one_write_on_the_batcher(
        v2app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    client = v2app.test_client()
    admin, predictor = bearer(v2app, "admin"), bearer(v2app, "predict")
    upload(client, admin, EXAMPLE)  # batching: up to 32 requests, 2 ms
    commits: list[tuple[int, str]] = []
    commit = PredictService._commit

    def counted(self: PredictService, recorded: list) -> None:
        commits.append((len(recorded), threading.current_thread().name))
        commit(self, recorded)

    monkeypatch.setattr(PredictService, "_commit", counted)
    rows = flowers(REQUESTS, seed=3)

    def call(i: int) -> str:
        response = v2app.test_client().post(
            "/v2/models/default/infer", headers=predictor,
            json=infer_body(rows[i][None], f"user-{i}"))
        assert response.status_code == 200, response.get_json()
        return response.get_json()["parameters"]["prediction_id"]

    for _attempt in range(5):  # the threads must meet in one batch at least once
        commits.clear()
        answered = concurrently(REQUESTS, call)
        ids = [answered[i] for i in range(REQUESTS)]
        assert all(isinstance(p, str) for p in ids), ids
        if max(n for n, _ in commits) > 1:
            break
    assert max(n for n, _ in commits) > 1, commits  # several answers, one write
    assert sum(n for n, _ in commits) == REQUESTS  # one record per answer
    assert all(thread.startswith("batcher-") for _, thread in commits), commits
    db = v2app.extensions["abvoc"].db
    with db.session() as s:
        for table, column in ((OutboxEvent, OutboxEvent.key),
                              (ServedPrediction, ServedPrediction.prediction_id),
                              (PredictionInput, PredictionInput.prediction_id)):
            stored = s.scalar(select(func.count()).select_from(table)
                              .where(column.in_(ids)))
            assert stored == REQUESTS, table.__tablename__  # each answer durable, once


@contextmanager
def _writes_held(url: str) -> Iterator[None]:
    """Another client holding the store's write lock (the ledger table's on PostgreSQL, the
    database's on SQLite): the batcher's commit waits until it lets go, as behind a stalled
    store."""
    engine = create_engine(url)
    try:
        with engine.connect() as held:
            if url.startswith("sqlite"):
                held.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                held.begin()
                held.execute(text(f"LOCK TABLE {ServedPrediction.__tablename__} "
                                  "IN EXCLUSIVE MODE"))
            try:
                yield
            finally:
                held.rollback()
    finally:
        engine.dispose()


def _with_deadline(app: Flask, tmp_path: Path, count: int, *,
                   seed: int) -> Callable[[int], Any]:
    """The example bundle served with a 300 ms deadline; a call of /v2 infer on row i of
    `count` flowers (each from a client of its own, so calls can run at once)."""
    admin = bearer(app, "admin")
    bundle = copy_example(tmp_path)
    edit(bundle, "max_batch_time_ms = 2", "max_batch_time_ms = 2\ntimeout_ms = 300")
    upload(app.test_client(), admin, bundle)
    rows = flowers(count, seed=seed)

    def infer(i: int) -> Any:  # the response
        return app.test_client().post("/v2/models/default/infer", headers=admin,
                                      json=infer_body(rows[i][None], f"user-{i}"))

    return infer


@pytest.fixture
def direct_app(settings: Settings) -> Iterator[Flask]:
    """Each answer waiting for its own commit: PostgreSQL's way, SQLite's with
    ABVOC_REQUEST_SPOOL=off."""
    flask_app = create_app(settings.with_overrides(request_spool=False),
                           test_config={"TESTING": True, "ROUTER_REFRESH_S": 0.0})
    yield flask_app
    close_app(flask_app)


def test_requests_queued_behind_a_stalled_commit_are_the_stores_delay(
        direct_app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit that outlasts the candidate's deadline holds the requests queued behind it: past
    their deadline they get a 503 saying to retry (the store's delay), are not recorded as the
    candidate's failures (which the error-rate guardrail would count), and leave nothing stored;
    the answer whose commit waited is served once the store lets go."""
    v2app = direct_app
    infer = _with_deadline(v2app, tmp_path, 4, seed=9)
    warm = infer(0)  # the lookups are cached from here
    assert warm.status_code == 200, warm.get_json()
    committing = threading.Event()
    commit = PredictService._commit

    def flagged(self: PredictService, recorded: list) -> None:
        committing.set()
        commit(self, recorded)

    monkeypatch.setattr(PredictService, "_commit", flagged)
    url = v2app.extensions["abvoc"].settings.database_url
    with ThreadPoolExecutor(3) as pool:
        with _writes_held(url):
            stalled = pool.submit(infer, 1)
            assert committing.wait(10)  # its answer is in, its commit waiting on the lock
            queued = [pool.submit(infer, i) for i in (2, 3)]
            time.sleep(1.0)  # past their deadline
        served = stalled.result(10)
        assert served.status_code == 200, served.get_json()  # claimed: served once committed
        for future in queued:
            response = future.result(10)
            assert response.status_code == 503, response.get_json()
            assert "still being recorded" in response.get_json()["error"]
            assert response.headers["Retry-After"] == "2"
    db = v2app.extensions["abvoc"].db
    with db.session() as s:
        ledger = s.scalars(select(ServedPrediction.prediction_id)).all()
    # No failure recorded for the refused ones: only the two answers.
    assert sorted(ledger) == sorted(r.get_json()["parameters"]["prediction_id"]
                                    for r in (warm, served))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_stalled_sqlite_store_holds_no_answer_and_loses_none(v2app: Flask,
                                                                tmp_path: Path) -> None:
    """With the request spool (SQLite's default) answers are in the spool's file when given:
    while another client holds the store's write lock for a second, requests are still answered
    at once, and once it lets go every answer's rows are in the store, once."""
    infer = _with_deadline(v2app, tmp_path, 8, seed=4)
    assert infer(0).status_code == 200  # the lookups are cached from here
    url = v2app.extensions["abvoc"].settings.database_url
    with _writes_held(url):
        start = time.perf_counter()
        answers = [infer(i) for i in range(1, 8)]
        took = time.perf_counter() - start
        held, _ = v2app.extensions["abvoc_serving"].predict.unrecorded()
        time.sleep(1.0)  # past the candidate's 300 ms deadline: nothing waits on the store
    assert [r.status_code for r in answers] == [200] * 7, answers[0].get_json()
    assert took < 3, took
    assert held >= 1  # answered while their rows waited in the spool
    ids = [r.get_json()["parameters"]["prediction_id"] for r in answers]
    db = v2app.extensions["abvoc"].db
    with db.reading() as s:  # this process's read waits for its spool
        for table, column in ((OutboxEvent, OutboxEvent.key),
                              (ServedPrediction, ServedPrediction.prediction_id),
                              (PredictionInput, PredictionInput.prediction_id)):
            stored = s.scalar(select(func.count()).select_from(table).where(column.in_(ids)))
            assert stored == len(ids), table.__tablename__


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_readyz_says_when_answers_wait_in_the_spool(v2app: Flask, tmp_path: Path) -> None:
    """Answers held in the spool past the lag limit (the store locked by another writer) make
    /readyz not ready, saying how many and how long; once the store lets go, the spool is ok."""
    infer = _with_deadline(v2app, tmp_path, 3, seed=5)
    assert infer(0).status_code == 200
    v2app.config["READY_MAX_LAG_S"] = 0.2
    client = v2app.test_client()
    with _writes_held(v2app.extensions["abvoc"].settings.database_url):
        assert infer(1).status_code == 200
        time.sleep(0.3)
        start = time.perf_counter()
        response = client.get("/readyz")
        took = time.perf_counter() - start
        body = response.get_json()
    assert took < 2, took  # only its first read waits (1 s) for the spool
    assert response.status_code == 503, body
    assert re.fullmatch(r"lagging: \d+ answers are not in the store yet, the oldest for "
                        r"\d+s \(limit 0s\)", body["checks"]["spool"])
    assert body["spool_pending"] >= 1
    deadline = time.monotonic() + 10  # the mover takes the store as its busy handler wakes
    while True:
        body = client.get("/readyz").get_json()  # the outbox lags past 0.2 s: no relay runs
        if body["spool_pending"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (body["checks"]["spool"], body["spool_pending"]) == ("ok", 0), body


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_correction_of_an_answer_still_in_the_spool_is_a_503_to_retry(
        v2app: Flask, tmp_path: Path) -> None:
    """While another writer holds the store, a correction of an answer whose ledger row is still
    in the spool gets a 503 with Retry-After (its receipt proves it was answered: a 404 would
    call it unknown) and stores nothing; sent again once the store lets go, it is accepted."""
    infer = _with_deadline(v2app, tmp_path, 2, seed=6)
    assert infer(0).status_code == 200
    client = v2app.test_client()
    corrector = bearer(v2app, "correct")
    db = v2app.extensions["abvoc"].db
    with _writes_held(v2app.extensions["abvoc"].settings.database_url):
        answer = infer(1)
        assert answer.status_code == 200
        given = answer.get_json()["parameters"]
        label = answer.get_json()["outputs"][0]["data"][0]
        body = {"prediction_id": given["prediction_id"], "receipt": given["receipt"],
                "corrected_output": label}
        refused = client.post("/v1/corrections", headers=corrector, json=body)
    assert refused.status_code == 503, refused.get_json()
    assert refused.headers["Retry-After"] == "1"
    assert "send the request again in a moment" in refused.get_json()["error"]
    with db.reading() as s:
        assert s.scalar(select(func.count()).select_from(CorrectionRequest)) == 0
    accepted = client.post("/v1/corrections", headers=corrector, json=body)
    assert accepted.status_code == 202, accepted.get_json()
