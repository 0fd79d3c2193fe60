"""JSON columns are written through orjson, and keep taking what the standard library took."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import Text, cast, select

from core.store import json_text
from core.store.db import Database
from core.store.models import Prediction
from core.store.upsert import insert_rows

T0 = datetime(2026, 11, 20, 8, tzinfo=UTC)
PLAIN = {"recognizer": {"tokens": ["x", "^", "{", "2", "}"], "score": 0.25}, "text": "ü√"}
# What orjson refuses and the standard encoder writes: read back as the standard library would.
AWKWARD = {"big": 10**30, "keys": {1: "one"}, "numpy": np.float64(0.5)}
AWKWARD_READ = {"big": 10**30, "keys": {"1": "one"}, "numpy": 0.5}


def _row(pid: str, stages: dict) -> dict:
    return {"prediction_id": pid, "event_id": f"e-{pid}", "experiment_id": 1, "candidate": "c",
            "arm": "control", "shadow": False, "unit_id": "u", "slice": "all",
            "input_hash": pid, "output": "x", "output_type": None, "confidence": 0.5,
            "latency_ms": 1.0, "stages": stages, "created_at": T0}


def test_text_is_compact_json_and_the_refused_values_fall_back() -> None:
    assert json_text.dumps(PLAIN) == json.dumps(PLAIN, separators=(",", ":"),
                                                 ensure_ascii=False)
    assert json.loads(json_text.dumps(AWKWARD)) == AWKWARD_READ
    assert json_text.dumps("\ud800") == '"\\ud800"'  # escaped, as before
    assert json_text.dumps(float("nan")) == "null"  # valid JSON on every backend
    with pytest.raises(TypeError):
        json_text.dumps({"set": {1, 2}})


def test_both_write_paths_store_orjson_text_and_read_it_back(db: Database) -> None:
    """The worker's batch insert (the driver's cursor on SQLite, arrays on PostgreSQL) and the
    ORM's own execution both write the engine's codec, and reads decode it."""
    with db.session() as s:
        insert_rows(s, Prediction.__table__, [_row("p1", PLAIN), _row("p2", AWKWARD)],
                    ["prediction_id"])
        s.add(Prediction(**_row("p3", PLAIN)))
    with db.reading() as s:
        stored = dict(s.execute(select(Prediction.prediction_id, Prediction.stages)).all())
        text = dict(s.execute(select(Prediction.prediction_id,
                                     cast(Prediction.stages, Text))).all())
    assert stored == {"p1": PLAIN, "p2": AWKWARD_READ, "p3": PLAIN}
    compact = json_text.dumps(PLAIN)
    assert " " not in compact
    assert text["p1"] == text["p3"] == compact  # the standard encoder would write ", " and \u


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_rows_written_by_the_standard_encoder_still_read(db: Database) -> None:
    with db.session() as s:
        s.add(Prediction(**_row("old", {})))
    path = db.url.split(":///", 1)[1]
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE predictions SET stages = ? WHERE prediction_id = 'old'",
                    (json.dumps({"score": float("nan"), "text": "ü"}),))
    with db.reading() as s:
        stages = s.scalar(select(Prediction.stages))
    assert stages["text"] == "ü" and math.isnan(stages["score"])
