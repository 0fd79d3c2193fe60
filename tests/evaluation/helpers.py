"""Event builders and store readers shared by the evaluation tests."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from core import events, receipts
from core.bus.base import Bus, Record
from core.outbox import OutboxRelay, add_events
from core.store.db import Database
from core.store.models import Candidate, Experiment, OnlineAggregate, Prediction
from core.stream import apply_records
from evaluation.worker import GROUP_ID, apply_events, make_worker, prepare_events

T0 = datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
SECRET = "evaluation-test-secret"
"""The secret the test corrections' receipts are signed with, and the worker verifies."""


def prediction(pid: str, *, experiment_id: int | None = 1, arm: str | None = "control",
               candidate: str = "cand-a", shadow: bool = False, slice_: str = "printed/middle",
               output: str = "x^{2}", confidence: float | None = 0.9,
               latency_ms: float | None = 10.0, unit_id: str | None = None,
               at: datetime = T0, error: str | None = None,
               stages: dict[str, Any] | None = None) -> dict[str, Any]:
    event = events.make_event(
        events.PREDICTION_MADE, prediction_id=pid, experiment_id=experiment_id, arm=arm,
        candidate=candidate, shadow=shadow, unit_id=unit_id or f"u-{pid}", slice=slice_,
        input_hash=pid[:16], output=output, confidence=confidence, latency_ms=latency_ms,
        error=error, stages=stages if stages is not None else {})
    event["occurred_at"] = at.isoformat()
    return event


def correction(pid: str, truth: str, *, at: datetime = T0,
               cid: str | None = None) -> dict[str, Any]:
    event = events.make_event(events.CORRECTION_SUBMITTED, correction_id=cid or uuid.uuid4().hex,
                              prediction_id=pid, corrected_output=truth,
                              receipt=receipts.sign(SECRET, pid))
    event["occurred_at"] = at.isoformat()
    return event


def apply(db: Database, batch: list[dict[str, Any]]) -> int:
    """Apply events through the stream's exactly-once path, as the worker does."""
    records = [Record("t", 0, i, e["prediction_id"], json.dumps(e).encode())
               for i, e in enumerate(batch)]
    return apply_records(db, GROUP_ID, records, apply_events, prepare=prepare_events)


def aggregate_totals(db: Database, experiment_id: int | None = None) -> dict[str, float]:
    """Sum of n per metric (and per class label) over every hour and group."""
    t = OnlineAggregate
    query = select(t.metric, t.label, func.sum(t.n), func.sum(t.sum)).group_by(t.metric, t.label)
    if experiment_id is not None:
        query = query.where(t.experiment_id == experiment_id)
    with db.session() as s:
        rows = s.execute(query).all()
    out: dict[str, float] = {}
    for metric, label, n, total in rows:
        out[f"{metric}:{label}" if label else metric] = float(n)
        if not label:
            out[f"{metric}.sum"] = float(total)
    return out


def add_experiment(db: Database, *, name: str = "exp", arms: list[dict[str, Any]] | None = None,
                   shadows: list[dict[str, Any]] | None = None,
                   guardrails: dict[str, Any] | None = None,
                   primary_metric: str = "correction_rate", scope: str = "default") -> int:
    arms = arms or [
        {"name": "control", "candidate": "cand-a", "weight": 0.5, "control": True},
        {"name": "treatment", "candidate": "cand-b", "weight": 0.5, "control": False},
    ]
    with db.session() as s:
        exp = Experiment(name=name, scope=scope, salt="s", status="running", arms=arms,
                         shadows=shadows or [],
                         guardrails=guardrails or {}, primary_metric=primary_metric,
                         created_at=T0, started_at=T0)
        s.add(exp)
        s.flush()
        return int(exp.id)


def add_candidate(db: Database, name: str, offline_results: dict[str, Any]) -> None:
    with db.session() as s:
        s.add(Candidate(name=name, version="1", offline_results=offline_results,
                        created_at=T0, updated_at=T0))


def flow(db: Database, bus: Bus, batch: list[dict[str, Any]], prefix: str,
         chunk: int = 500) -> int:
    """Send events the way the service does: outbox (one transaction per chunk) → relay → bus →
    the evaluation worker. Returns how many events the worker applied."""
    bus.ensure_topics(events.topics(prefix))
    for lo in range(0, len(batch), chunk):
        with db.session() as s:
            add_events(s, batch[lo: lo + chunk], prefix)
    relay = OutboxRelay(db, bus, batch_size=1000)
    while relay.relay_once():
        pass
    worker = make_worker(db, bus, prefix, secret=SECRET, max_records=1000)
    try:
        idle = 0
        while worker.applied < len(batch) and idle < 20:
            idle = 0 if worker.step(timeout_ms=300) else idle + 1
    finally:
        worker.close()
    return worker.applied


def as_stored_before_0023(db: Database, *prediction_ids: str) -> None:
    """The predictions as a worker before schema 0023 stored them: not saying whether they
    failed (only the served ledger's watched rows do)."""
    with db.session() as s:
        s.execute(update(Prediction).where(Prediction.prediction_id.in_(prediction_ids))
                  .values(failed=None))
