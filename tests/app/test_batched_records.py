"""Concurrent requests to a batched candidate: each answer's record (event, ledger row) is made
and committed on the candidate's batcher, the batch's records in one write, before any caller
of the batch gets its answer; every answer is recorded once, none is lost."""

from __future__ import annotations

import threading

import pytest
from flask import Flask
from sqlalchemy import func, select

from core.store.models import OutboxEvent, PredictionInput, ServedPrediction
from serving.predict import PredictService
from tests.serving.test_batching import concurrently
from tests.support.bundles import EXAMPLE
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
