"""Rebuilding an experiment's per-unit sums from the stored predictions, for experiments whose
predictions were stored before the worker kept them (schema 0021) or by an older worker.

Until then their built-in metrics are tested per prediction (:data:`unit_moments.STALE`). The
worker keeps each unit's sums as it applies events (:meth:`Accumulator.unit_rows`); the same
accumulator fed the stored predictions and their truths gives the same sums, with one gap: a
failed prediction is not marked in ``predictions``, only in the served ledger's rows that the
guardrails watch (experiment traffic; not shadows, nor a forced request). Rebuilt error counts
are those. Where they fall short of the aggregates' error count the unit analysis sees it (it
checks each metric's unit sums against the aggregates' count and sum) and tests the error rate
per prediction, saying why, while the other metrics go per unit.

A rebuild is one transaction that takes the unit sums' write lock first (SQLite: the write
transaction itself; PostgreSQL: ``LOCK TABLE ... SHARE ROW EXCLUSIVE``, which a worker's upsert
waits on), deletes the experiment's rows, reads the predictions and writes the rows again: a
worker batch committed before it is in what it reads, one committed after adds its own sums on
top, so nothing is counted twice or lost while the worker runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from core.store.db import Database
from core.store.models import (
    Correction,
    OnlineAggregate,
    Prediction,
    PredictionTruth,
    ServedPrediction,
)
from core.store.outcome_models import UnitSums
from core.store.upsert import insert_rows
from evaluation import aggregation as agg

CHUNK = 5000
"""Predictions read per round trip (and between two progress reports)."""


@dataclass(frozen=True)
class Rebuilt:
    experiment_id: int
    predictions: int
    unit_rows: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def stale_experiments(session: Session) -> list[int]:
    """The experiments whose unit sums do not hold every prediction the aggregates count."""
    a, u = OnlineAggregate, UnitSums
    counted = dict(session.execute(
        select(a.experiment_id, func.sum(a.n)).where(a.metric == agg.PREDICTIONS,
                                                     a.experiment_id > 0)
        .group_by(a.experiment_id)).all())
    held = dict(session.execute(
        select(u.experiment_id, func.sum(u.predictions)).group_by(u.experiment_id)).all())
    return sorted(e for e, n in counted.items() if abs(float(held.get(e) or 0) - float(n)) > 0.5)


def stored_predictions(session: Session, experiment_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Prediction)
                          .where(Prediction.experiment_id == experiment_id)) or 0


def rebuild(db: Database, experiment_id: int,
            progress: Callable[[int], None] | None = None) -> Rebuilt:
    """Rebuild one experiment's unit sums; `progress` is told the predictions read so far."""
    p, sp, t, c = Prediction, ServedPrediction, PredictionTruth, Correction
    query = (select(p.prediction_id, p.experiment_id, p.arm, p.candidate, p.shadow, p.slice,
                    p.created_at, p.output, p.confidence, p.latency_ms, p.unit_id,
                    p.output_type, sp.error, t.truth, c.output_type.label("truth_type"))
             .outerjoin(sp, sp.prediction_id == p.prediction_id)
             .outerjoin(t, t.prediction_id == p.prediction_id)
             .outerjoin(c, c.correction_id == t.correction_id)
             .where(p.experiment_id == experiment_id)
             .execution_options(yield_per=CHUNK))
    with db.session() as s:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text(f"LOCK TABLE {UnitSums.__tablename__} IN SHARE ROW EXCLUSIVE MODE"))
        s.execute(delete(UnitSums).where(UnitSums.experiment_id == experiment_id))
        acc = agg.Accumulator()
        read = 0
        for row in s.execute(query):
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
                # Only the unit sums are wanted: the per-hour sums would grow with the outputs.
                acc.sums.clear()
                acc.latencies.clear()
                if progress is not None:
                    progress(read)
        rows = acc.unit_rows()
        if rows:
            insert_rows(s, UnitSums.__table__, rows, agg.UNIT_KEYS, add=agg.UNIT_COLUMNS)
    if progress is not None:
        progress(read)
    return Rebuilt(experiment_id, read, len(rows))
