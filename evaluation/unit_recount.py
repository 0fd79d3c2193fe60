"""Each unit's sums recounted from the stored predictions and their truths, as the worker sums
them (:class:`evaluation.aggregation.Accumulator`), for the whole experiment or for the
predictions of a window of hours.

The worker keeps each unit's sums over the whole experiment (``unit_sums``), not per hour: a
table per unit and hour would be about as large as the predictions themselves and cost every
batch a second upsert. So a window that leaves some of the experiment's hours out (the weekly
report's week) recounts its units from the predictions it holds: about 13-15 µs per
prediction (one Python pass; 8.8 s for 595,000), fine for a report made once a week, too slow
for a page. A prediction stored before schema 0023 does not say whether it failed; for those
the served ledger's rows the guardrails watch (experiment traffic, not shadows nor forced
requests) are all that marks a failure, so their recounted errors may fall short: the unit
analysis compares every metric's recounted sums with the aggregates and keeps any that differ
per prediction, saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.store.models import Correction, Prediction, PredictionTruth, ServedPrediction
from evaluation import aggregation as agg
from evaluation.online import in_window

CHUNK = 5000
"""Predictions read per round trip (and between two progress reports)."""

UnitRows = dict[tuple[Any, ...], list[float]]
"""Unit rows: a key in ``agg.UNIT_KEYS`` order -> the ``agg.UNIT_COLUMNS`` values."""


def recount(session: Session, experiment_id: int, start: datetime | None = None,
            end: datetime | None = None, progress: Callable[[int], None] | None = None,
            ) -> tuple[UnitRows, int]:
    """The experiment's stored predictions (those of the hours ``[start, end)``) and their
    truths summed per unit row; and how many predictions were read. `progress` is told the
    predictions read so far, every CHUNK."""
    p, sp, t, c = Prediction, ServedPrediction, PredictionTruth, Correction
    query = (select(p.prediction_id, p.experiment_id, p.arm, p.candidate, p.shadow, p.slice,
                    p.created_at, p.output, p.confidence, p.latency_ms, p.unit_id,
                    p.output_type, func.coalesce(p.failed, sp.error).label("error"), t.truth,
                    c.output_type.label("truth_type"))
             .outerjoin(sp, sp.prediction_id == p.prediction_id)
             .outerjoin(t, t.prediction_id == p.prediction_id)
             .outerjoin(c, c.correction_id == t.correction_id)
             .where(p.experiment_id == experiment_id, *in_window(p.created_at, start, end))
             .execution_options(yield_per=CHUNK))
    acc = _UnitsOnly()
    read = 0
    for row in session.connection().execute(query):  # Core rows: no ORM layer per row
        facts = agg.PredictionFacts.of(
            prediction_id=row.prediction_id, experiment_id=row.experiment_id, arm=row.arm,
            candidate=row.candidate, shadow=row.shadow, slice_=row.slice,
            created_at=row.created_at, output=row.output, confidence=row.confidence,
            latency_ms=row.latency_ms, error=row.error, unit_id=row.unit_id,
            output_type=row.output_type)
        acc.add_prediction(facts)
        if row.truth is not None:
            acc.add_truth(facts, row.truth, row.truth_type)
        read += 1
        if read % CHUNK == 0:
            acc.latencies.clear()
            if progress is not None:
                progress(read)
    return {k: v for k, v in acc.units.items() if k[0]}, read


class _UnitsOnly(agg.Accumulator):
    """An accumulator of each unit's sums alone: the aggregates' rows are not wanted here (they
    were half of a recount's time)."""

    def add(self, group: agg.Group, metric: str, value: float = 1.0, label: str = "",
            square: float | None = None) -> None:
        return None
