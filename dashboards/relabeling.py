"""The relabeling page's figures: queues, throughput, agreement, and each experiment's audited
accuracy beside the correction-based bound, read through the same functions as the API."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from core.store.db import Database, utcnow
from core.store.relabel_models import RelabelLabel
from core.times import as_utc
from evaluation.candidate_facts import shown_names
from feedback.agreement import agreement
from feedback.annotation import queue_figures

DAYS = 14


def throughput(db: Database, days: int = DAYS) -> list[tuple[str, int, int]]:
    """(day, labels, skips or flags) for each of the last `days` days, oldest first."""
    since = utcnow() - timedelta(days=days - 1)
    start = since.replace(hour=0, minute=0, second=0, microsecond=0)
    labels: Counter[str] = Counter()
    other: Counter[str] = Counter()
    with db.reading() as s:
        for at, action in s.execute(select(RelabelLabel.created_at, RelabelLabel.action)
                                    .where(RelabelLabel.created_at >= start)):
            day = as_utc(at).strftime("%Y-%m-%d")
            (labels if action in ("label", "resolve") else other)[day] += 1
    out = []
    for i in range(days):
        day = (start + timedelta(days=i)).strftime("%Y-%m-%d")
        out.append((day, labels[day], other[day]))
    return out


def overview(db: Database) -> dict[str, Any]:
    return {"queues": queue_figures(db)["queues"], "throughput": throughput(db),
            "agreement": agreement(db)}


def accuracy_rows(results: dict[str, Any]) -> list[list[Any]]:
    """Per variant and slice: audit accuracy [interval] (n), labeled, correction bound."""
    block = results.get("online_accuracy") or {}
    variants = block.get("variants") or {}
    # Two versions of one name read "iris v1"/"iris v2", as on Offline vs online.
    names = shown_names(variants.values())
    rows = []
    for name, variant in variants.items():
        candidate = names[(variant["candidate"], variant.get("version"))]
        for slice_, fig in variant["slices"].items():
            audit, labeled = fig["audit"], fig["labeled"]
            interval = audit.get("ci") or [None, None]
            rows.append([name or f"shadow {candidate}", candidate, slice_,
                         audit.get("accuracy"), interval[0], interval[1], audit.get("n"),
                         labeled.get("accuracy"), labeled.get("n"),
                         fig["correction_bound"].get("accuracy")])
    return rows
