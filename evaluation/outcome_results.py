"""Outcome metrics in the results, tested per randomisation unit (users, not requests).

Each unit's value of a metric comes from ``outcome_unit_values`` under the metric's combine rule
(first, sum, mean or max of its outcomes); a ratio metric takes each unit's sums of its numerator
and denominator (a unit with only one of them counts 0 for the other) and is linearised by the
delta method (:mod:`evaluation.stats.ratio`). Per arm this gives n units, a mean and a variance,
which join the built-in metrics' aggregates as extra metrics of slice ``all``, so the same pass
of :func:`evaluation.stats.analyze` tests them (Welch or two-proportion z, mSPRT, Bayesian,
MDE, and Holm / Benjamini-Hochberg within slice ``all``'s comparisons).

A metric's ``missing`` rule says what a unit without an outcome of it is. ``skip`` (the
default): not in its sample, so the metric is the mean over the units that reported it (where
every unit that did has one value in every arm, as when only positive events are sent, the
metric's ``note`` says so). ``zero``: every unit exposed in the arm is in it, one that reported
none at 0 (a ratio's at 0 over 0), so n per arm is the units the sample-ratio check counts
there (:func:`evaluation.online.units_by_arm`: first seen in the experiment, in the window when
one is given), or the units that reported it where more did (a prediction stored without a unit
id is a unit that count does not hold). The zeros join the sums in aggregate: m zeros about a
shift k add ``-m k`` to the shifted sum and ``m k^2`` to the squares.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from scipy import stats as scipy_stats
from sqlalchemy import ColumnElement, Float, cast, select
from sqlalchemy.orm import Session

from core.outcome_metrics import PROPORTION, RATIO, ZERO_MISSING
from core.store.models import ExperimentMetric, OutcomeUnitValue
from evaluation import metric_definitions
from evaluation.first_arm import (
    adjust,
    first_arms,
    moved_values,
    sensitivity,
    sensitivity_sentence,
)
from evaluation.online import outcome_units_in_window, units_by_arm
from evaluation.outcomes import NONE_WAITING, waiting
from evaluation.several_arms import several_arms_figures, units_in_several_arms
from evaluation.stats import ExperimentAggregates, MeanStats, ratio_stats
from evaluation.stats.small_samples import wilson_interval


@dataclass(frozen=True)
class OutcomeAggregates:
    """Per arm (rows, in the results' arm order) and outcome metric (columns): n units and the
    shifted sums the stats package reads; ``figures`` is what the results show of them."""

    definitions: list[ExperimentMetric]
    n: np.ndarray
    sums: np.ndarray
    squares: np.ndarray
    shift: np.ndarray
    figures: dict[str, Any]
    several_arms: dict[str, Any] | None
    """The units seen in more than one arm, left out (None without outcome metrics)."""

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.definitions]

    @property
    def primary(self) -> ExperimentMetric | None:
        return next((d for d in self.definitions if d.is_primary), None)

    def control_sums(self, name: str) -> tuple[float, float, float]:
        """Plain ``(n, sum, sum_squares)`` of the control arm's unit values of a metric."""
        j = self.names.index(name)
        n, s, ss, k = self.n[0, j], self.sums[0, j], self.squares[0, j], self.shift[0, j]
        return float(n), float(s + n * k), float(ss + 2 * k * s + n * k * k)


def _unit_column(combine: str) -> Any:
    t = OutcomeUnitValue
    return {"first": t.first_value, "sum": t.total, "mean": t.total / cast(t.n, Float),
            "max": t.maximum}[combine]


@dataclass(frozen=True)
class _Only:
    """Which unit values count: filters on ``outcome_unit_values`` (a time window's), the units
    left out (seen in more than one arm) and, for the sensitivity figure, the arm each of those
    is counted in instead (evaluation.first_arm)."""

    where: Iterable[ColumnElement[bool]]
    left_out: frozenset[str]
    first_arm: Mapping[str, str] | None = None


def _values(session: Session, experiment_id: int, metric: str, combine: str,
            only: _Only) -> dict[str, np.ndarray]:
    t = OutcomeUnitValue
    found: dict[str, list[float]] = defaultdict(list)
    for arm, unit, value in session.execute(
            select(t.arm, t.unit_id, _unit_column(combine))
            .where(t.experiment_id == experiment_id, t.metric == metric, *only.where)):
        if unit not in only.left_out:
            found[arm].append(float(value))
    for arm, value in moved_values(session, experiment_id, metric, combine, only.where,
                                   only.first_arm or {}):
        found[arm].append(value)
    return {arm: np.array(v) for arm, v in found.items()}


def _ratio_units(session: Session, experiment_id: int, numerator: str, denominator: str,
                 only: _Only) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    t = OutcomeUnitValue
    first_arm = only.first_arm or {}
    units: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for arm, unit, metric, total in session.execute(
            select(t.arm, t.unit_id, t.metric, t.total)
            .where(t.experiment_id == experiment_id, t.metric.in_([numerator, denominator]),
                   *only.where)):
        if unit in only.left_out:
            if unit not in first_arm:
                continue
            arm = first_arm[unit]  # its sums from every arm, in its first
        units[(arm, unit)][0 if metric == numerator else 1] += float(total)
    by_arm: dict[str, list[list[float]]] = defaultdict(list)
    for (arm, _), pair in sorted(units.items()):
        by_arm[arm].append(pair)
    return {arm: (np.array(p)[:, 0], np.array(p)[:, 1]) for arm, p in by_arm.items()}


def _interval(kind: str, stat: MeanStats, alpha: float) -> list[float | None]:
    if stat.n == 0:
        return [None, None]
    if kind == PROPORTION:
        low, high = wilson_interval(stat.mean * stat.n, stat.n, alpha)
        return [low, high]
    if stat.n < 2:
        return [None, None]
    half = float(scipy_stats.t.isf(alpha / 2, stat.n - 1)) * math.sqrt(stat.variance / stat.n)
    return [stat.mean - half, stat.mean + half]


def _zeros(reported: list[int], arms: list[str], exposed: dict[str, int] | None) -> list[int]:
    """Per arm, the units added at 0: exposed there but without an outcome of the metric."""
    if exposed is None:
        return [0] * len(arms)
    return [max(exposed.get(a, 0) - r, 0) for a, r in zip(arms, reported, strict=True)]


def _arm_stat(session: Session, experiment_id: int, d: ExperimentMetric, arms: list[str],
              only: _Only, exposed: dict[str, int] | None,
              ) -> tuple[list[MeanStats], list[str | None], list[int], list[int]]:
    """Per arm: the statistic the tests read, why it has no figures (if so), the units in its
    sample (a ratio whose denominator sums to zero tests none but has them) and the units that
    reported the metric; `exposed` (units per arm) for a metric whose missing units count 0."""
    if d.kind == RATIO:
        units = _ratio_units(session, experiment_id, d.numerator or "", d.denominator or "",
                             only)
        reported = [units[a][0].size if a in units else 0 for a in arms]
        zeros = _zeros(reported, arms, exposed)
        ratios = [ratio_stats(*units.get(a, (np.zeros(0), np.zeros(0))), zeros=z)
                  if r + z else None for a, r, z in zip(arms, reported, zeros, strict=True)]
        return ([r.as_mean_stats() if r else MeanStats(0, 0.0, 0.0) for r in ratios],
                [r.error if r else None for r in ratios], [r.n if r else 0 for r in ratios],
                reported)
    values = _values(session, experiment_id, d.name, d.combine, only)
    found = [values.get(a, np.zeros(0)) for a in arms]
    reported = [v.size for v in found]
    zeros = _zeros(reported, arms, exposed)
    errors: list[str | None] = [None] * len(arms)
    if d.kind == PROPORTION:
        # A store whose metric changed kind before revision 0024 guarded it may hold a mean's
        # values under a proportion: shown as such, not tested (a rate of them means nothing).
        for i, v in enumerate(found):
            if v.size and not np.isin(v, (0.0, 1.0)).all():
                errors[i] = (f"{int((~np.isin(v, (0.0, 1.0))).sum())} unit value(s) are not 0 "
                             f"or 1 (outcomes accepted while {d.name!r} was of another kind); "
                             "define a new metric for this proportion")
                found[i], zeros[i] = np.zeros(0), 0
    # The zeros about the shift 0; adding re-expresses them about the values' own shift.
    stats = [MeanStats.from_values(v) + MeanStats(z, 0.0, 0.0)
             for v, z in zip(found, zeros, strict=True)]
    return stats, errors, [s.n if e is None else r
                           for s, e, r in zip(stats, errors, reported, strict=True)], reported


def _one_value_note(d: ExperimentMetric, stats: list[MeanStats], reported: list[int]
                    ) -> str | None:
    """What a metric averaged over its reporting units says where every one of them, in every
    arm, has the same value: nothing (as where only positive events are sent)."""
    arms = [s for s, r in zip(stats, reported, strict=True) if r and s.n]
    if d.kind == RATIO or d.missing == ZERO_MISSING or len(arms) < 2 \
            or any(s.n > 1 and s.variance > 0 for s in arms) \
            or len({s.mean for s in arms}) > 1:
        return None
    return (f"every unit that reported {d.name!r}, in every arm, has the value "
            f"{arms[0].mean:g}: only units that reported it are counted, so the arms cannot "
            "differ on it; if outcomes are sent only when it happens (1 for a purchase, nothing "
            "otherwise), define it with \"missing\": \"zero\" so that every exposed unit "
            "counts, one without an outcome as 0")


def load_outcomes(session: Session, experiment_id: int, arms: list[str], alpha: float,
                  window: tuple[datetime | None, datetime | None] = (None, None),
                  ) -> OutcomeAggregates:
    """Every outcome metric of the experiment, per arm (``arms`` in the results' order), over
    the units first seen in the `window` (whole hours; every unit when both ends are open:
    :func:`evaluation.online.outcome_units_in_window`)."""
    definitions = metric_definitions.load(session, experiment_id)
    if not definitions:  # the built-in metrics count each prediction in the arm that served it
        return OutcomeAggregates([], *(np.zeros((len(arms), 0)) for _ in range(4)), {}, None)
    in_window = outcome_units_in_window(experiment_id, *window)
    where = () if in_window is None else (in_window,)
    # A unit served in two arms is left out of both (evaluation.several_arms).
    left_out = frozenset(session.scalars(units_in_several_arms(experiment_id)))
    only = _Only(where, left_out)
    exposed = units_by_arm(session, experiment_id, *window, leaving_out=left_out) \
        if any(d.missing == ZERO_MISSING for d in definitions) else None
    shape = (len(arms), len(definitions))
    n, sums, squares, shift = (np.zeros(shape) for _ in range(4))
    figures: dict[str, Any] = {}
    held = waiting(session, experiment_id)
    left_out_stats: list[list[MeanStats]] = []
    for j, d in enumerate(definitions):
        arm_stats, errors, units, reported = _arm_stat(
            session, experiment_id, d, arms, only,
            exposed if d.missing == ZERO_MISSING else None)
        left_out_stats.append(arm_stats)
        per_arm = {}
        for i, (arm, stat) in enumerate(zip(arms, arm_stats, strict=True)):
            if d.kind == PROPORTION:  # successes as sums: the proportion kernels take no shift
                successes = round(stat.mean * stat.n) if stat.n else 0
                n[i, j], sums[i, j], squares[i, j] = stat.n, successes, successes
                variance = stat.mean * (1 - stat.mean) if stat.n else math.nan
            else:
                n[i, j], sums[i, j], squares[i, j], shift[i, j] = (
                    stat.n, stat.sum, stat.sum_squares, stat.shift)
                variance = stat.variance
            per_arm[arm] = {"units": units[i], "reported": reported[i], "mean": _num(stat.mean),
                            "variance": _num(variance),
                            "interval": _interval(d.kind, stat, alpha), "error": errors[i]}
        figures[d.name] = {**metric_definitions.view(d), "arms": per_arm,
                           "waiting": held.get(d.name, NONE_WAITING),
                           "note": _one_value_note(d, arm_stats, reported)}
    several = several_arms_figures(session, experiment_id, len(left_out))
    if left_out and len(arms) > 1:
        _add_sensitivity(session, experiment_id, definitions, left_out_stats, arms, only,
                         window, exposed, alpha, several)
    return OutcomeAggregates(definitions, n, sums, squares, shift, figures, several)


def _add_sensitivity(session: Session, experiment_id: int, definitions: list[ExperimentMetric],
                     left_out_stats: list[list[MeanStats]], arms: list[str], only: _Only,
                     window: tuple[datetime | None, datetime | None],
                     exposed: dict[str, int] | None, alpha: float,
                     several: dict[str, Any]) -> None:
    """Each outcome metric with the moved units counted in their first arm beside the same
    test with them left out (`left_out_stats`, the results' own; evaluation.first_arm), in
    `several`; the primary outcome metric's (else the first tested one's) differences both ways
    join its note."""
    first_arm = first_arms(session, experiment_id, only.left_out, *window)
    moved = _Only(only.where, only.left_out, first_arm)
    arrived = Counter(first_arm.values())  # moved units exposed in their first arm
    exposed_first = None if exposed is None else {
        a: exposed.get(a, 0) + arrived[a] for a in arms}
    figures = []
    for d, left in zip(definitions, left_out_stats, strict=True):
        first = _arm_stat(session, experiment_id, d, arms, moved,
                          exposed_first if d.missing == ZERO_MISSING else None)[0]
        kind = PROPORTION if d.kind == PROPORTION else "mean"
        figures.append({**sensitivity(d.name, arms, left, first, kind, alpha),
                        "primary": d.is_primary})
    adjust(figures)
    several["first_arm"] = figures
    ordered = sorted(figures, key=lambda f: not f["primary"])  # the primary first, if any
    sentence = next((said for f in ordered if (said := sensitivity_sentence(f, arms[0]))), None)
    if sentence and several.get("note"):
        several["note"] += (f". Counted in their first arm instead (intention to treat), with "
                            f"all their outcomes: {sentence}")


def with_outcomes(base: ExperimentAggregates, outcomes: OutcomeAggregates,
                  arm_rows: list[int]) -> ExperimentAggregates:
    """`base` (variants x metrics x slices) with the outcome metrics added as more metrics,
    filled for the arms (variant rows `arm_rows`) in slice 0 (``all``) and empty elsewhere."""
    if not outcomes.definitions:
        return base
    variants, _, slices = base.shape
    extra = (variants, len(outcomes.definitions), slices)
    arrays = []
    for source in (outcomes.n, outcomes.sums, outcomes.squares, outcomes.shift):
        block = np.zeros(extra)
        block[arm_rows, :, 0] = source
        arrays.append(block)
    base_shift = base.shift if base.shift is not None else np.zeros(base.n.shape)
    flags = [d.kind == PROPORTION for d in outcomes.definitions]
    return ExperimentAggregates(
        np.concatenate([base.n, arrays[0]], axis=1),
        np.concatenate([base.sums, arrays[1]], axis=1),
        np.concatenate([base.sum_squares, arrays[2]], axis=1),
        np.concatenate([base.is_proportion, flags]),
        base.arm_names, (*base.metric_names, *outcomes.names), base.slice_names,
        np.concatenate([base_shift, arrays[3]], axis=1))


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
