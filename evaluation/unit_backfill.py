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

Rebuilds of one store take turns (:func:`_one_rebuild_at_a_time`): a second rebuild whose
snapshot predated the first's writes would add its rebuilt sums on top of the first's, doubling
them. It waits for the first to finish, then rebuilds from a snapshot that holds its writes.
"""

from __future__ import annotations

import fcntl
import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.store.db import Database, sqlite_file
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
REBUILD_LOCK = 0x61627675
"""The first half of the two-key advisory lock one experiment's rebuilds take turns on
(PostgreSQL; "abvu" in ASCII)."""


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
    with _one_rebuild_at_a_time(db, experiment_id):
        return _rebuild(db, experiment_id, progress)


@contextmanager
def _one_rebuild_at_a_time(db: Database, experiment_id: int) -> Iterator[None]:
    """Hold the experiment's rebuild lock from before the snapshot until the last write has
    committed. PostgreSQL: a session-level advisory lock on a connection of its own (outside
    a transaction, so a server's idle-in-transaction timeout cannot end it during a long
    recount; the server drops it with the connection if the process dies). SQLite: the
    snapshot is read outside the write lock, so two rebuilds could both read before either
    writes; they take turns on an exclusive ``flock`` of a file beside the store (one host),
    every experiment's rebuilds on one lock (there is one writer at a time anyway)."""
    if db.dialect == "postgresql":
        key = (REBUILD_LOCK, (experiment_id + 2**31) % 2**32 - 2**31)  # two int4 halves
        with db.engine.connect() as conn:
            conn.execute(select(func.pg_advisory_lock(*key)))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(select(func.pg_advisory_unlock(*key)))
                conn.commit()
        return
    path = sqlite_file(db.url)
    if path is None:  # an in-memory store: no other process shares it
        yield
        return
    fd = os.open(f"{path}.unit-backfill-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when the file is closed
        yield
    finally:
        os.close(fd)


def _rebuild(db: Database, experiment_id: int,
             progress: Callable[[int], None] | None) -> Rebuilt:
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
    """rebuilt + (now - then), column by column (a missing row is zeros); a column unchanged
    since the snapshot is the rebuilt one, also where an older release left it infinite (an
    overflowing error: infinity less infinity would store NaN)."""
    zero = (0,) * len(agg.UNIT_COLUMNS)
    return [a + (b - c if b != c else 0) for a, b, c in zip(rebuilt or zero, now or zero,
                                                           then or zero, strict=True)]
