"""Rebuilding an experiment's per-unit sums from the stored predictions, for experiments whose
predictions were stored before the worker kept them (schema 0021) or by an older worker.

Until then their built-in metrics are tested per prediction (:data:`unit_moments.STALE`). The
worker keeps each unit's sums as it applies events (:meth:`Accumulator.unit_rows`); the same
accumulator fed the stored predictions and their truths gives the same sums, with one gap: a
prediction stored before schema 0023 does not say whether it failed; for those only the served
ledger's rows that the guardrails watch (experiment traffic; not shadows, nor a forced request)
do, and rebuilt error counts are those. Where they fall short of the aggregates' error count
the unit analysis sees it (it checks each metric's unit sums against the aggregates' count and
sum) and tests the error rate per prediction, saying why, while the other metrics go per unit.

A rebuild reads a snapshot and writes short transactions, so neither the worker nor (on SQLite,
one writer at a time) the API waits on it for longer than a write of a few thousand units. It
reads the predictions and the experiment's unit rows as they stand in one snapshot (PostgreSQL:
repeatable read), sums the predictions into rows as the worker would, and then, a few thousand
units per transaction under the unit sums' write lock (SQLite: the write transaction itself;
PostgreSQL: ``LOCK TABLE ... SHARE ROW EXCLUSIVE``, which a worker's upsert waits on), writes
each unit row as rebuilt + (the row now - the row in the snapshot): unit sums only ever grow by
what a worker adds, so whatever it added since the snapshot is added on top, exactly once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.store.db import Database
from core.store.models import (
    Experiment,
    OnlineAggregate,
    Prediction,
)
from core.store.outcome_models import UnitSums
from core.store.upsert import in_values, insert_rows
from evaluation import aggregation as agg
from evaluation.unit_moments import UnitKey, unit_rows
from evaluation.unit_recount import recount

UNITS_PER_WRITE = 5000
"""Units whose rows one write transaction replaces."""


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
    """Rebuild one experiment's unit sums; `progress` is told the predictions read so far.
    Raises NotFound for an unknown experiment."""
    with db.reading() as s:
        if s.get_bind().dialect.name == "postgresql":  # one snapshot for both reads
            s.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        if s.get(Experiment, experiment_id) is None:
            raise NotFound(f"experiment {experiment_id} does not exist")
        then = unit_rows(s, experiment_id)
        rebuilt, read = recount(s, experiment_id, progress=progress)
    by_unit: dict[str, set[UnitKey]] = defaultdict(set)
    for key in (*rebuilt, *then):
        by_unit[key[-1]].add(key)
    units = sorted(by_unit)
    written = 0
    for lo in range(0, len(units), UNITS_PER_WRITE):
        chunk = units[lo:lo + UNITS_PER_WRITE]
        with db.session() as s:
            if s.get_bind().dialect.name == "postgresql":
                s.execute(text(f"LOCK TABLE {UnitSums.__tablename__} "
                               "IN SHARE ROW EXCLUSIVE MODE"))
            now = unit_rows(s, experiment_id, chunk)
            keys = sorted(set(now).union(*(by_unit[u] for u in chunk)))
            rows = [dict(zip((*agg.UNIT_KEYS, *agg.UNIT_COLUMNS),
                             (*key, *_plus(rebuilt.get(key), now.get(key), then.get(key))),
                             strict=True)) for key in keys]
            s.execute(delete(UnitSums).where(UnitSums.experiment_id == experiment_id,
                                              in_values(s, UnitSums.unit_id, chunk)))
            insert_rows(s, UnitSums.__table__, rows, agg.UNIT_KEYS, add=agg.UNIT_COLUMNS)
            written += len(rows)
    if progress is not None:
        progress(read)
    return Rebuilt(experiment_id, read, written)


def _plus(rebuilt: list[float] | None, now: list[float] | None,
          then: list[float] | None) -> list[float]:
    """rebuilt + now - then, column by column (a missing row is zeros)."""
    zero = (0,) * len(agg.UNIT_COLUMNS)
    return [a + b - c for a, b, c in zip(rebuilt or zero, now or zero, then or zero,
                                         strict=True)]
