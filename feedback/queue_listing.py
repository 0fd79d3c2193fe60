"""The admin's listing of relabel items by status (``GET /v1/relabel/items``), with each item's
labels: a read of the queues beside the annotators' workflow (:mod:`feedback.annotation`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core.errors import AbvocError
from core.relabel import check_queue
from core.store.db import Database
from core.store.models import RelabelItem, RelabelLabel
from core.text import quoted_names
from feedback.annotation import STATUSES


def listing(db: Database, status: str, queue: str | None = None,
            limit: int = 50) -> list[dict[str, Any]]:
    """Items by status (e.g. ``review`` for the admin), most urgent first, with their labels."""
    if status not in STATUSES:
        raise AbvocError(f"'status' must be one of {quoted_names(STATUSES)}")
    if queue is not None:
        check_queue(queue)
    r = RelabelItem
    with db.reading() as s:
        query = select(r).where(r.status == status).order_by(r.priority.desc(), r.id).limit(limit)
        if queue is not None:
            query = query.where(r.queue == queue)
        items = list(s.scalars(query))
        acts: dict[int, list[dict[str, Any]]] = {}
        if items:
            for a in s.scalars(select(RelabelLabel).where(
                    RelabelLabel.item_id.in_([i.id for i in items])).order_by(RelabelLabel.id)):
                acts.setdefault(a.item_id, []).append(
                    {"annotator": a.annotator, "action": a.action, "label": a.label,
                     "verdict": a.verdict})
        return [{"id": i.id, "queue": i.queue, "status": i.status, "priority": i.priority,
                 "reasons": list(i.reasons or []), "candidate": i.candidate, "slice": i.slice,
                 "prediction_id": i.prediction_id, "note": i.note, "label": i.label,
                 "acts": acts.get(i.id, [])} for i in items]
