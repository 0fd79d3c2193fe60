"""Each unit's sums recounted from the stored predictions and their truths, as the worker sums
them (:class:`evaluation.aggregation.Accumulator`), for the whole experiment or for the
predictions of a window of hours.

The worker keeps each unit's sums over the whole experiment (``unit_sums``), not per hour: a
table per unit and hour would be about as large as the predictions themselves and cost every
batch a second upsert. So a window that leaves some of the experiment's hours out (the weekly
report's week) recounts its units from the predictions it holds: 9-15 µs per prediction (one
Python pass; 5.5 s for 595,000, 0.15 s for 17,727), fine for a report made once a week or a
window of a few hours, too slow for a page over a long one. A prediction stored before schema
0023 does not say whether it failed; for those the served ledger's rows the guardrails watch
(experiment traffic, not shadows nor forced requests) are all that marks a failure, so their
recounted errors may fall short: the unit analysis compares every metric's recounted sums with
the aggregates and keeps any that differ per prediction, saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.store.models import (
    Correction,
    OnlineAggregate,
    Prediction,
    PredictionTruth,
    ServedPrediction,
)
from evaluation import aggregation as agg
from evaluation.aggregation import in_window
from evaluation.online import ALL, Variant, hour_window
from evaluation.unit_sums import RATIOS, Moments

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
             .where(_experiment(session, experiment_id, start, end),
                    *in_window(p.created_at, start, end))
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


def _experiment(session: Session, experiment_id: int, start: datetime | None,
                end: datetime | None) -> Any:
    """The condition keeping the experiment's predictions. SQLite's planner, without statistics,
    takes the experiment's index whatever the window (an hour of a million-prediction
    experiment: 0.54 s of reading); where the window holds fewer predictions (of every
    experiment) than the experiment does, the condition is written so that it cannot use that
    index (``experiment_id + 0``), and the window's time index is taken instead."""
    p = Prediction
    if (start is None and end is None) or session.get_bind().dialect.name != "sqlite":
        return p.experiment_id == experiment_id
    by_time = predictions_in(session, start, end) < predictions_in(
        session, experiment_id=experiment_id)
    return (p.experiment_id + 0 if by_time else p.experiment_id) == experiment_id


def predictions_in(session: Session, start: datetime | None = None,
                   end: datetime | None = None, experiment_id: int | None = None) -> int:
    """How many predictions the aggregates count in the hours ``[start, end)`` (of one
    experiment, or of all): what a recount of them would read."""
    a = OnlineAggregate
    where = [] if experiment_id is None else [a.experiment_id == experiment_id]
    return int(session.scalar(select(func.sum(a.n)).where(
        a.metric == agg.PREDICTIONS, *where, *in_window(a.hour, start, end))) or 0)


AUTO_RECOUNT_LIMIT = 20_000
"""A window of at most this many predictions is tested per unit unless the caller says not to,
its units recounted from its stored predictions (18,115 of the million-prediction bench store:
0.21-0.33 s); a larger one counts predictions, and says so."""


def recount_affordable(session: Session, since: datetime | None, until: datetime | None,
                       experiment_id: int) -> bool:
    """Whether the window's units can be recounted on a live read (the dashboard's ranges, the
    API's windows unless `recount_units` says): at most AUTO_RECOUNT_LIMIT predictions."""
    return predictions_in(session, *hour_window(since, until),
                          experiment_id) <= AUTO_RECOUNT_LIMIT


class _UnitsOnly(agg.Accumulator):
    """An accumulator of each unit's sums alone: the aggregates' rows are not wanted here (they
    were half of a recount's time)."""

    def add(self, group: agg.Group, metric: str, value: float = 1.0, label: str = "",
            square: float | None = None) -> None:
        return None


_COLUMN = {name: i for i, name in enumerate(agg.UNIT_COLUMNS)}
Key = tuple[Variant, str, str]  # variant, slice, metric


def moments_of(rows: UnitRows) -> dict[Key, Moments]:
    """The moments :func:`evaluation.unit_moments.load_moments` groups in the store, of unit
    rows held in memory: per variant and slice, and for ``all`` each unit's slices summed
    first (numpy sums per group, where a Moments object per row took 40 µs)."""
    if not rows:
        return {}
    values = np.array(list(rows.values()), dtype=np.float64)
    cells, units = _groups([k[1:5] for k in rows]), _groups([(*k[1:4], k[5]) for k in rows])
    out: dict[Key, Moments] = {}
    _add_grouped(out, [(_variant(k), k[3]) for k in cells[0]], cells[1], values)
    totals = _summed(units[1], values, len(units[0]))
    groups = _groups([k[:3] for k in units[0]])
    _add_grouped(out, [(_variant(k), ALL) for k in groups[0]], groups[1], totals)
    return out


def _variant(key: tuple[Any, ...]) -> Variant:
    return Variant(key[0], key[1], bool(key[2]))


def _groups(keys: list[Any]) -> tuple[list[Any], np.ndarray]:
    """The distinct keys in order of first sight, and each key's position among them."""
    first: dict[Any, int] = {}
    index = np.fromiter((first.setdefault(k, len(first)) for k in keys), dtype=np.int64,
                        count=len(keys))
    return list(first), index


def _summed(index: np.ndarray, values: np.ndarray, groups: int) -> np.ndarray:
    """The rows of `values` summed per group, column by column."""
    return np.stack([np.bincount(index, weights=column, minlength=groups)
                     for column in values.T], axis=1)


def _add_grouped(out: dict[Key, Moments], keys: list[tuple[Variant, str]], index: np.ndarray,
                 values: np.ndarray) -> None:
    """Each ratio's moments of the rows in each group (a (variant, slice) key per group): over
    the rows with a count, ``1, x, y, x^2, y^2, xy``."""
    for metric, (x_name, terms) in RATIOS.items():
        x = values[:, _COLUMN[x_name]]
        y = sum(c * values[:, _COLUMN[name]] for c, name in terms)
        has = (x > 0).astype(np.float64)
        parts = np.stack([has, x, y, x * x, y * y, x * y], axis=1) * has[:, None]
        for (variant, slice_), row in zip(keys, _summed(index, parts, len(keys)), strict=True):
            out[(variant, slice_, metric)] = Moments(*(float(v) for v in row))
