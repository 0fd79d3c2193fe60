"""Each unit's counts of a label candidate's answers by class, read from the stored predictions,
for the prediction-shift test over units (:mod:`evaluation.clustered_shares`).

The worker keeps no per-unit class counts (a row per unit and class would cost every event a
second upsert), so they are counted here with one grouped read of the candidate's predictions:
84 ms for 40,000 answers of 2,000 units on SQLite (the report's other work: 65 ms), about 2 s
a million. A live report does it for a candidate version with at most
:data:`UNIT_CLASS_LIMIT` online answers; past it the test stays per answer and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import numpy as np
from sqlalchemy import Select, false, func, select
from sqlalchemy.orm import Session

from core.store.models import Experiment, Prediction, PredictionTruth, ServedPrediction
from evaluation import aggregation as agg
from evaluation.aggregation import in_window
from evaluation.candidate_facts import Ref, variant_version
from evaluation.online import ALL, Variant, hour_window

UNIT_CLASS_LIMIT = 50_000
"""The most online answers of one candidate version counted per unit on a live read."""



def too_many(answers: float) -> str | None:
    """Why a candidate version's shift is tested per answer although its units sent several:
    more answers than a live read counts per unit. None within the limit."""
    if answers <= UNIT_CLASS_LIMIT:
        return None
    return (f"tested per answer: its {int(answers):,} online answers are more than the "
            f"{UNIT_CLASS_LIMIT:,} counted per unit on a live read, so where units sent several "
            "answers its p-value is too small; ask for a window of fewer hours")


@dataclass(frozen=True)
class UnitClassCounts:
    """K units' answers by class: `labels` and the K x L matrix of counts."""

    labels: tuple[str, ...]
    counts: np.ndarray

    def matrix(self, classes: Sequence[str]) -> np.ndarray:
        """The counts in `classes`' order (0 for a class no unit answered)."""
        index = {label: i for i, label in enumerate(self.labels)}
        out = np.zeros((self.counts.shape[0], len(classes)))
        for j, label in enumerate(classes):
            if label in index:
                out[:, j] = self.counts[:, index[label]]
        return out


Discordant = tuple[UnitClassCounts, UnitClassCounts]
"""Each unit's answers a truth changed, by the class answered and by the true class."""


def _countable(totals: Mapping[Ref, Any], counts: Callable[[Any], Mapping[str, float]],
               ) -> dict[Ref, Any]:
    """The versions of `totals` with counts to read, within a live read's limit."""
    return {ref: value for ref, value in totals.items()
            if (n := sum(counts(value).values())) > 0 and too_many(n) is None}


def _versions(experiment: Experiment) -> Callable[[str | None, str], Ref]:
    """A served arm's candidate version, looked up once per arm and candidate."""
    return cache(lambda arm, candidate: (candidate, variant_version(experiment, arm,
                                                                     candidate, False)))


def _units(unit: str | None, count: int, *where: object) -> Iterator[tuple[object, int]]:
    """A grouped row's unit and count; rows with no unit are each a unit of their own."""
    if unit is not None:
        yield unit, count
    else:
        yield from (((*where, i), 1) for i in range(count))


def unit_class_counts(session: Session, experiment: Experiment,
                      answers: Mapping[Ref, Mapping[str, float]],
                      since: datetime | None = None, until: datetime | None = None,
                      ) -> dict[Ref, UnitClassCounts]:
    """Per candidate version in `answers` (its online answers by class, as the aggregates count
    them, given only where some unit sent several requests), each unit's counts of those
    answers, where some unit gave several and the stored predictions account for every answer
    counted (a version whose do not is left out, and tested per answer). Served answers only,
    failed ones left out, as the aggregates do."""
    return _per_unit(session, experiment, answers, Prediction.output, since, until,
                     lambda query: _answered(query, {lb for c in answers.values() for lb in c}))


def variant_class_counts(session: Session, experiment: Experiment,
                         answers: Mapping[Variant, Mapping[str, Mapping[str, float]]],
                         since: datetime | None = None, until: datetime | None = None,
                         ) -> dict[Variant, dict[str, UnitClassCounts]]:
    """As :func:`unit_class_counts`, per arm or shadow and slice (`answers`: each one's answers
    by slice, ``all`` among them, and class, as the results count them), in one grouped read:
    the results test each arm on its own units, where two arms running one version are two
    samples. A slice is left out (tested per answer) where the stored answers do not account
    for its counts or no unit gave several."""
    wanted = _countable(answers, lambda slices: slices.get(ALL, {}))
    if not wanted:
        return {}
    p = Prediction
    query = _answered(
        select(p.arm, p.candidate, p.shadow, p.unit_id, p.slice, p.output, func.count())
        .where(p.experiment_id == experiment.id,
               p.candidate.in_(sorted({v.candidate for v in wanted})),
               *in_window(p.created_at, *hour_window(since, until))),
        {lb for slices in wanted.values() for c in slices.values() for lb in c},
    ).group_by(p.arm, p.candidate, p.shadow, p.unit_id, p.slice, p.output)
    tally = _Tally({(v, s): counts for v, slices in wanted.items()
                    for s, counts in slices.items()})
    variant_of = cache(lambda arm, candidate, shadow: Variant(
        "" if shadow else arm or "", candidate, bool(shadow)))
    for arm, candidate, shadow, unit, slice_, output, count in session.execute(query):
        variant = variant_of(arm, candidate, shadow)
        for cell in ((variant, ALL), (variant, slice_)):
            tally.add(cell, unit, count, output, arm, slice_)
    out: dict[Variant, dict[str, UnitClassCounts]] = {}
    for (variant, s), counts in tally.counts().items():
        out.setdefault(variant, {})[s] = counts
    return out


class _Tally:
    """Each unit's counts per value, for cells whose totals per value the aggregates hold:
    index lists filled row by row, summed into one matrix per cell at the end."""

    def __init__(self, totals: Mapping[Any, Mapping[str, float]]) -> None:
        self.totals = totals
        self.orders = {cell: {label: j for j, label in enumerate(sorted(counts))}
                       for cell, counts in totals.items()}
        self.cells: dict[Any, tuple[dict[object, int], list[int], list[int], list[int]]] = {}

    def add(self, cell: Any, unit: str | None, count: int, value: str, *where: object) -> None:
        """A grouped row: `count` of `value` by `unit` (no unit: each its own, told apart by
        `where`); rows of cells or values not wanted are left out."""
        where_in = self.orders.get(cell, {}).get(value)
        if where_in is None:
            return
        units, rows, columns, counts = self.cells.setdefault(cell, ({}, [], [], []))
        for key, times in _units(unit, count, *where, value):
            rows.append(units.setdefault(key, len(units)))
            columns.append(where_in)
            counts.append(times)

    def counts(self) -> dict[Any, UnitClassCounts]:
        """The cells whose units account for their totals and where some unit gave several."""
        out = {}
        for cell, (units, rows, columns, counts) in self.cells.items():
            order = tuple(sorted(self.totals[cell]))
            matrix = np.zeros((len(units), len(order)))
            np.add.at(matrix, (np.array(rows), np.array(columns)), np.array(counts, dtype=float))
            if (found := _clustered(order, matrix, self.totals[cell])) is not None:
                out[cell] = found
        return out


def _answered(query: Select[Any], labels: set[str]) -> Select[Any]:
    """`query` narrowed to answers of `labels`, failed ones left out (as the aggregates)."""
    p, sp = Prediction, ServedPrediction
    return query.outerjoin(sp, sp.prediction_id == p.prediction_id).where(
        p.output.in_(sorted(labels)), func.coalesce(p.failed, sp.error, false()) == false())


def _clustered(order: tuple[str, ...], matrix: np.ndarray, totals: Mapping[str, float],
               ) -> UnitClassCounts | None:
    """The units' counts, where they add up to the aggregates' `totals` and some unit gave
    several; else None (tested per answer)."""
    if (np.abs(matrix.sum(axis=0) - [totals.get(label, 0) for label in order]) < 0.5).all() \
            and (matrix.sum(axis=1) > 1).any():
        return UnitClassCounts(order, matrix)
    return None


def unit_slice_counts(session: Session, experiment: Experiment,
                      predictions: Mapping[Ref, Mapping[str, float]],
                      since: datetime | None = None, until: datetime | None = None,
                      ) -> dict[Ref, UnitClassCounts]:
    """As :func:`unit_class_counts`, each unit's served predictions per slice (failed ones
    too, as the traffic mix counts them), from `predictions` per version and slice."""
    return _per_unit(session, experiment, predictions, Prediction.slice, since, until,
                     lambda query: query)


def _per_unit(session: Session, experiment: Experiment,
              totals: Mapping[Ref, Mapping[str, float]], column: Any,
              since: datetime | None, until: datetime | None,
              narrow: Callable[[Select[Any]], Select[Any]]) -> dict[Ref, UnitClassCounts]:
    """Each unit's predictions per value of `column` for the versions in `totals` (their counts
    per value as the aggregates hold them), in one grouped read `narrow` may join and filter."""
    wanted = _countable(totals, lambda counts: counts)
    if not wanted:
        return {}
    p = Prediction
    query = narrow(select(p.arm, p.candidate, p.unit_id, column, func.count())
                   .where(p.experiment_id == experiment.id, p.shadow == false(),
                          p.candidate.in_(sorted({ref[0] for ref in wanted})),
                          *in_window(p.created_at, *hour_window(since, until)))
                   ).group_by(p.arm, p.candidate, p.unit_id, column)
    version = _versions(experiment)
    tally = _Tally(wanted)
    for arm, candidate, unit, value, count in session.execute(query):
        tally.add(version(arm, candidate), unit, count, value, arm)
    return tally.counts()


def relabelled_versions(experiment: Experiment,
                        relabelled: Sequence[agg.Accumulator]) -> set[Ref]:
    """The served candidate versions a verified label changed some truth of (the truths added
    and taken out, as :func:`evaluation.online.load_cells` gives them): their stored truths
    are not the ones counted, and labels that swap truths between units keep every class's
    total, so only leaving them out keeps their McNemar tests from reading the wrong units."""
    return {(g.candidate, variant_version(experiment, g.arm, g.candidate, False))
            for acc in relabelled for g, _, _ in acc.sums if not g.shadow}


def unit_discordant_counts(session: Session, experiment: Experiment,
                           changed: Mapping[Ref, tuple[Mapping[str, float], Mapping[str, float]]],
                           since: datetime | None = None, until: datetime | None = None,
                           ) -> dict[Ref, Discordant]:
    """Per candidate version in `changed` (its answers a truth changed, by answered class and
    by true class, as the aggregates count them: McNemar's discordant counts), each unit's
    counts of both, where the stored truths account for every one of them (verified labels
    that replaced a truth do not show here: the caller leaves such a version out, see
    :func:`relabelled_versions`, and it is tested per answer)."""
    wanted = _countable(changed, lambda pair: pair[0])
    if not wanted:
        return {}
    p, sp, t = Prediction, ServedPrediction, PredictionTruth
    query = (select(p.arm, p.candidate, p.unit_id, p.output, t.truth, func.count())
             .join(t, t.prediction_id == p.prediction_id)
             .outerjoin(sp, sp.prediction_id == p.prediction_id)
             .where(p.experiment_id == experiment.id, p.shadow == false(),
                    p.candidate.in_(sorted({ref[0] for ref in wanted})),
                    p.output != t.truth,
                    func.coalesce(p.failed, sp.error, false()) == false(),
                    *in_window(p.created_at, *hour_window(since, until)))
             .group_by(p.arm, p.candidate, p.unit_id, p.output, t.truth))
    version = _versions(experiment)
    found: dict[Ref, dict[object, tuple[dict[str, int], dict[str, int]]]] = {}
    for arm, candidate, unit, output, truth, count in session.execute(query):
        ref = version(arm, candidate)
        if ref not in wanted:
            continue
        units = found.setdefault(ref, {})
        for key, times in _units(unit, count, arm, output, truth):
            answered, true = units.setdefault(key, ({}, {}))
            answered[output] = answered.get(output, 0) + times
            true[truth] = true.get(truth, 0) + times
    out = {}
    for ref, units in found.items():
        order = tuple(sorted(set(wanted[ref][0]) | set(wanted[ref][1])))
        sides = tuple(np.array([[side.get(label, 0) for label in order]
                                for side in (pair[k] for pair in units.values())], dtype=float)
                      for k in (0, 1))
        if all((np.abs(m.sum(axis=0) - [wanted[ref][k].get(label, 0) for label in order])
                < 0.5).all() for k, m in enumerate(sides)):
            out[ref] = (UnitClassCounts(order, sides[0]), UnitClassCounts(order, sides[1]))
    return out
