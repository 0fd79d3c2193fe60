"""Stage attribution streams its rows: peak memory stays flat as predictions with a truth grow."""

from __future__ import annotations

import tracemalloc

from sqlalchemy import insert

from core.store.db import Database, utcnow
from core.store.models import Prediction, PredictionTruth
from evaluation.stage_blame import stage_attribution

ROWS = 2000


def _fill(db: Database, n: int) -> None:
    # Stages as big as a real formula's (boxes, classes, relations: about 12 KB of JSON).
    stages = {"detector": {"boxes": [[i, i, i + 5, i + 9] for i in range(300)]},
              "recognizer": {"classes": ["x"] * 300},
              "aligner": {"relations": [[i - 1, "right", 0.99] for i in range(300)]}}
    now = utcnow()
    with db.session() as s:
        s.execute(insert(Prediction), [{
            "prediction_id": f"p{i}", "event_id": f"e{i}", "experiment_id": 1,
            "candidate": "c", "arm": "a", "shadow": False, "slice": f"s{i % 3}",
            "input_hash": "h", "output": "y", "stages": stages, "created_at": now,
        } for i in range(n)])
        s.execute(insert(PredictionTruth), [{
            "prediction_id": f"p{i}", "correction_id": f"c{i}", "truth": "x", "counted_at": now,
        } for i in range(n)])


def test_attribution_does_not_hold_every_prediction(db: Database) -> None:
    _fill(db, ROWS)
    tracemalloc.start()
    try:
        with db.session() as s:
            report = stage_attribution(s, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    overall = next(r for r in report["rows"] if r["slice"] == "all")
    assert overall["with_truth"] == ROWS and overall["counts"]["detector"] == ROWS
    # Holding all 2,000 rows' stages at once takes well over 100 MB of Python objects; one
    # chunk of 500 takes a fraction of that.
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.0f} MiB"
