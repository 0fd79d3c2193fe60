"""Group commit: concurrent writers share commits; a failing unit fails alone."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from core.store.db import Database, utcnow
from core.store.groupcommit import GroupCommitter
from core.store.models import ServedPrediction


def _unit(i: int) -> dict:
    return {ServedPrediction.__table__: [{
        "prediction_id": f"p{i}", "experiment_id": None, "candidate": "c",
        "created_at": utcnow()}]}


def test_concurrent_units_commit_and_a_bad_one_fails_alone(db: Database) -> None:
    committer = GroupCommitter(db)
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            # unit 7 repeats unit 3's key: a constraint violation inside a shared batch
            committer.insert(_unit(3 if i == 7 else i))
            results[i] = i
        except Exception as exc:  # noqa: BLE001 - the error is the result under test
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    committer.close()
    failed = [i for i, r in results.items() if isinstance(r, Exception)]
    assert len(failed) == 1 and failed[0] in (3, 7)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ServedPrediction)) == 39
    with pytest.raises(RuntimeError, match="closed"):
        committer.insert(_unit(99))
