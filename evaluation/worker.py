"""The evaluation worker: applies PredictionMade and CorrectionSubmitted events to the store.

It runs as a member of the `evaluation` consumer group; several workers share the partitions.
Apply is idempotent twice over: the stream layer skips event ids already applied, and rows are
inserted with ON CONFLICT DO NOTHING on their natural keys.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from core import events
from core.bus.base import Bus
from core.store.db import Database
from core.store.models import Correction, Prediction
from core.store.upsert import insert_ignore
from core.stream import StreamConsumer

GROUP_ID = "evaluation"


def _prediction_row(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "prediction_id": e["prediction_id"],
        "event_id": e["event_id"],
        "experiment_id": e.get("experiment_id"),
        "candidate": e["candidate"],
        "arm": e.get("arm"),
        "shadow": bool(e.get("shadow", False)),
        "unit_id": e.get("unit_id"),
        "slice": e.get("slice") or "all",
        "input_hash": e["input_hash"],
        "output": e["output"],
        "confidence": e.get("confidence"),
        "latency_ms": e.get("latency_ms"),
        "stages": e.get("stages") or {},
        "created_at": datetime.fromisoformat(e["occurred_at"]),
    }


def _correction_row(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "correction_id": e["correction_id"],
        "event_id": e["event_id"],
        "prediction_id": e["prediction_id"],
        "corrected_output": e["corrected_output"],
        "rating": e.get("rating"),
        "comment": e.get("comment"),
        "created_at": datetime.fromisoformat(e["occurred_at"]),
    }


def apply_events(session: Session, batch: list[dict[str, Any]]) -> None:
    """Store a batch of validated events in the caller's transaction."""
    predictions = [_prediction_row(e) for e in batch if e["event_type"] == events.PREDICTION_MADE]
    corrections = [
        _correction_row(e) for e in batch if e["event_type"] == events.CORRECTION_SUBMITTED
    ]
    insert_ignore(session, Prediction.__table__, predictions, keys=["prediction_id"])
    insert_ignore(session, Correction.__table__, corrections, keys=["correction_id"])


def make_worker(db: Database, bus: Bus, prefix: str, **kwargs: Any) -> StreamConsumer:
    return StreamConsumer(db, bus, GROUP_ID, events.topics(prefix), apply_events, **kwargs)


def run_worker(db: Database, bus: Bus, prefix: str, stop: threading.Event) -> None:
    """Consume until `stop` is set (the `abvoc worker` command sets it on SIGTERM/SIGINT)."""
    bus.ensure_topics(events.topics(prefix))
    make_worker(db, bus, prefix).run(stop)
