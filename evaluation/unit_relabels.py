"""The verified labels' changes applied to the per-unit moments, as they are to the aggregates.

:func:`evaluation.online.load_cells` swaps the labels in as the truths of the answers to their
input and hands the per-unit side of that swap on (two accumulators: the truths added and those
taken out). :func:`apply_relabels` moves each unit it touches from its stored sums to the
relabelled ones, in its slice and in ``all``, so the unit sums keep accounting for the
aggregates' counts and sums and the metrics stay per unit once annotators label items.

Slice ``all`` is both a slice a prediction may carry (a request that names none) and the sum of
every slice, which the unit analysis keys alike (:func:`evaluation.unit_moments.load_moments`
reads the sum over a unit's slices into it): a unit's change is moved there once, as the sum's.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.store.outcome_models import UnitSums
from core.store.upsert import in_values
from evaluation import aggregation as agg
from evaluation.online import ALL, Variant
from evaluation.unit_recount import UnitRows
from evaluation.unit_sums import NO_UNITS, Moments, contributions_of_rows

Key = tuple[Variant, str, str]  # variant, slice, metric
UnitKey = tuple[Any, ...]
"""A unit row's key, in ``agg.UNIT_KEYS`` order."""

_CORRECTED = agg.UNIT_COLUMNS.index("corrected")


def apply_relabels(session: Session, experiment_id: int, moments: dict[Key, Moments],
                   added: agg.Accumulator, taken: agg.Accumulator,
                   stored_rows: UnitRows | None = None) -> None:
    """Move the units that verified labels changed from their stored sums (or those of
    `stored_rows`) to the relabelled ones, in their slices and in ``all``."""
    delta: dict[tuple[Variant, str, str], np.ndarray] = defaultdict(
        lambda: np.zeros(len(agg.UNIT_COLUMNS)))
    for acc, sign in ((added, 1.0), (taken, -1.0)):
        for (_, arm, cand, shadow, slice_, unit), values in acc.units.items():
            delta[(Variant(arm, cand, bool(shadow)), slice_, unit)] += sign * np.array(values)
    if not delta:
        return
    units = sorted({k[2] for k in delta})
    if stored_rows is not None:
        chosen = set(units)
        stored = _by_variant({k: v for k, v in stored_rows.items() if k[-1] in chosen})
    else:
        stored = _by_variant(unit_rows(session, experiment_id, units))
    totals: dict[tuple[Variant, str], np.ndarray] = {}
    for (variant, _, unit), values in stored.items():
        totals[(variant, unit)] = totals.get((variant, unit), 0.0) + values
    changed: dict[tuple[Variant, str], np.ndarray] = {}
    moves: dict[tuple[Variant, str], list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for (variant, slice_, unit), change in delta.items():
        change[_CORRECTED] = 0.0  # a label is a truth, not a customer's correction
        if slice_ != ALL:  # a prediction of slice `all` is moved once, with the unit's sum
            before = stored.get((variant, slice_, unit), np.zeros(len(change)))
            moves[(variant, slice_)].append((before, before + change))
        base = changed.get((variant, unit), totals.get((variant, unit), np.zeros(len(change))))
        changed[(variant, unit)] = base + change
    for (variant, unit), after in changed.items():
        moves[(variant, ALL)].append((totals.get((variant, unit), np.zeros(len(after))), after))
    for (variant, slice_), pairs in moves.items():
        _move(moments, variant, slice_, np.array([b for b, _ in pairs]),
              np.array([a for _, a in pairs]))


def _move(moments: dict[Key, Moments], variant: Variant, slice_: str, before: np.ndarray,
          after: np.ndarray) -> None:
    """Move units (rows) from their `before` sums to their `after` ones in `slice_`'s moments:
    for each metric, the units whose contribution changed."""
    old = contributions_of_rows(before, agg.UNIT_COLUMNS)
    new = contributions_of_rows(after, agg.UNIT_COLUMNS)
    for metric, contribution in new.items():
        differs = (contribution != old[metric]).any(axis=0)
        if differs.any():
            key = (variant, slice_, metric)
            change = (contribution[:, differs] - old[metric][:, differs]).sum(axis=1)
            moments[key] = Moments(*(float(m + c) for m, c in
                                     zip(moments.get(key, NO_UNITS), change, strict=True)))


def unit_rows(session: Session, experiment_id: int,
              units: list[str] | None = None) -> dict[UnitKey, list[float]]:
    """An experiment's stored unit rows (only those of `units`, when given): key -> the
    ``agg.UNIT_COLUMNS`` values."""
    t = UnitSums.__table__
    query = select(*(t.c[k] for k in agg.UNIT_KEYS), *(t.c[c] for c in agg.UNIT_COLUMNS)) \
        .where(t.c.experiment_id == experiment_id)
    if units is not None:
        query = query.where(in_values(session, t.c.unit_id, units))
    width = len(agg.UNIT_KEYS)
    return {(r[0], r[1], r[2], bool(r[3]), r[4], r[5]): list(r[width:])
            for r in session.execute(query)}


def _by_variant(rows: UnitRows) -> dict[tuple[Variant, str, str], np.ndarray]:
    return {(Variant(arm, cand, shadow), slice_, unit): np.array(values, dtype=float)
            for (_, arm, cand, shadow, slice_, unit), values in rows.items()}
