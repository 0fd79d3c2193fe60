"""The rows a served answer commits before it is given: its PredictionMade event's outbox
row, its ledger row (``served_predictions``) and its input kept for annotators."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.outbox import outbox_row
from core.settings import Settings
from core.store.db import utcnow
from core.store.groupcommit import Unit
from core.store.models import OutboxEvent, PredictionInput, ServedPrediction

if TYPE_CHECKING:
    from serving.predict import PredictRequest

MAX_KEPT_INPUT_BYTES = 4 << 20
"""Inputs kept for annotators: at most this large each (a larger one is served, not kept)."""


def answer_rows(event: dict[str, Any], settings: Settings, watched: bool = False,
                req: PredictRequest | None = None) -> Unit:
    """The rows an answer commits before it is given: the event's outbox row, its ledger row
    and the kept input, if any (`benchmarks/bench_commit.py` times their commit).

    A `watched` row (a routed request: within an experiment or outside any, not forced, not a
    shadow copy) carries its latency and failure: Operations' ledger and, within an experiment,
    the guardrails' window, shared by every serving process through the store."""
    rows = {
        OutboxEvent.__table__: outbox_row(event, settings.topic_prefix, validated=True),
        ServedPrediction.__table__: {
            "prediction_id": event["prediction_id"], **_where(event),
            "candidate": event["candidate"], "version": event["candidate_version"],
            "created_at": utcnow(),
            "latency_ms": event["latency_ms"] if watched else None,
            "error": (event["error"] is not None) if watched else None,
            "excluded": (event.get("excluded") or {}).get("reason")},
    }
    if req is not None and req.raw_input is not None and settings.input_retention_hours \
            and len(req.raw_input) <= MAX_KEPT_INPUT_BYTES:
        # Served predictions only: a shadow answers the same input (same input hash).
        rows[PredictionInput.__table__] = {
            "prediction_id": event["prediction_id"], "input_hash": req.input_hash,
            "kind": req.raw_kind or req.kind, "data": req.raw_input, "created_at": utcnow()}
    return rows


def _where(event: dict[str, Any]) -> dict[str, Any]:
    """The ledger's experiment and arm: where an excluded request was sent, too."""
    excluded = event.get("excluded") or {}
    return {"experiment_id": excluded.get("experiment_id", event["experiment_id"]),
            "arm": excluded.get("arm", event["arm"])}
