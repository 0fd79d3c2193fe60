"""The built-in metrics per unit: the tests take the randomisation unit, not the prediction, as
the independent observation.

A unit (user, session) that sends many requests sends correlated ones: the same user corrects
in the same way, the same session sees the same kind of input. A per-prediction rate such as the
correction rate is then a ratio of two per-unit sums, ``R = sum(y_i) / sum(x_i)`` (corrections
over predictions of unit i), and the variance of ``R`` is the delta method's (Deng, Knoblich and
Lu, KDD 2018; the same linearisation as :mod:`evaluation.stats.ratio` for outcome ratios)::

    Var(R) ~ K * sum((y_i - R x_i)^2) / ((K - 1) * sum(x_i)^2)      (K units with x_i > 0)

Treating the predictions as independent underestimates it by about the mean cluster size times
the within-unit correlation, so intervals are too narrow and an A/A test fails too often.

The worker keeps each unit's sums per experiment cell (``unit_sums``,
:mod:`evaluation.unit_sums`); this module reads their moments per variant, slice and metric in
one grouped query each for the slices and for ``all`` (a unit's slices summed first), applies the
verified labels' per-unit changes, and hands a metric on as a mean metric of K units centred on
``R`` (:meth:`Moments.stats`), so every test (Welch, mSPRT, Bayesian, power) reads it as
the mean it linearises to. A metric is analysed per unit only where some unit has more than one
observation of it (else the two analyses agree and the proportion tests stay exact) and only
where the unit sums account for every prediction of the aggregates (predictions stored before
the table existed are not in it).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scipy.stats import t as t_dist
from sqlalchemy import case, exists, func, select
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from core.store.models import OnlineAggregate, Prediction
from core.store.outcome_models import UnitSums
from evaluation import aggregation as agg
from evaluation.online import ALL, Cell, Variant, hour_window, metric_stats
from evaluation.unit_recount import UnitRows, moments_of, recount
from evaluation.unit_relabels import UnitKey as UnitKey  # re-exported: the backfill's
from evaluation.unit_relabels import apply_relabels
from evaluation.unit_relabels import unit_rows as unit_rows
from evaluation.unit_sums import (
    METRIC_COLUMNS,
    NO_UNITS,
    RATIOS,
    Moments,
    ratio_y,
)

STALE = ("the per-unit sums do not hold every prediction (some were stored before schema "
         "0021, or by a worker of an older version: `abvoc db backfill-unit-sums` rebuilds "
         "them, all but the failures the served ledger did not watch of predictions stored "
         "before schema 0023)")
UNMATCHED = ("its per-unit sums hold every prediction but do not add up to the aggregates' "
             "count and sum of it")
UNWATCHED = ("its per-unit sums hold every prediction but do not add up to the aggregates' count "
             "and sum of it, and some predictions were stored before schema 0023: they do not "
             "say whether they failed, and sums rebuilt from them count only the failures the "
             "served ledger watched")
RECOUNTED = ("its per-unit sums, recounted from the window's stored predictions, differ from the "
             "aggregates (a prediction stored before schema 0023 does not say whether it "
             "failed: only the served ledger's watched rows do)")
WINDOWED = ("a time window (since/until) leaves some of the experiment's hours out, and the "
            "per-unit sums cover the whole experiment")
NOTE_AT = 1.5
"""Predictions per unit (the busiest arm) from which a metric left per prediction is named."""

log = logging.getLogger(__name__)


Key = tuple[Variant, str, str]  # variant, slice, metric
Recounts = dict[tuple[int, datetime | None, datetime | None], UnitRows]
"""Windows' recounted unit rows, by experiment and hours, shared by the analyses of a report."""


@dataclass
class UnitAnalysis:
    """The moments of every (variant, slice, metric), and which metrics the tests take per
    unit; ``fallback`` names the metrics left per prediction, with why."""

    moments: dict[Key, Moments]
    per_unit: frozenset[str]
    fallback: dict[str, str]

    def stats(self, variant: Variant, slice_: str, metric: str) -> Moments:
        return self.moments.get((variant, slice_, metric), NO_UNITS)


PER_PREDICTION = UnitAnalysis({}, frozenset(), {})
"""Every built-in metric tested per prediction."""


_COUNTS = tuple(dict.fromkeys(x for x, _ in RATIOS.values()))


def _ratios_over(counts: tuple[str, ...]) -> dict[str, tuple[str, Any]]:
    """The ratios whose count column is in `counts`, in ``RATIOS`` order."""
    return {m: (x, terms) for m, (x, terms) in RATIOS.items() if x in counts}


def _moment_columns(source: Any, counts: tuple[str, ...]) -> list[Any]:
    """Per count column in `counts`: the units with one, its sum and sum of squares; then per
    ratio over those counts: the sums of y, y^2 and xy (ratios sharing a count share its
    moments)."""
    out = []
    for name in counts:
        x = source.c[name]
        out += [func.sum(case((x > 0, 1), else_=0)), func.sum(x), func.sum(x * x)]
    for x_name, terms in _ratios_over(counts).values():
        x, y = source.c[x_name], ratio_y(terms, source.c)
        out += [func.sum(y), func.sum(y * y), func.sum(x * y)]
    return out


def _read(rows: Iterable[Any], slice_of: Any, counts: tuple[str, ...],
          out: dict[Key, Moments]) -> None:
    """Each row's moments per ratio, in :func:`_moment_columns`' order; a ratio whose count is
    not in `counts` (no unit of the experiment has one) has none."""
    kept = _ratios_over(counts)
    width = 3 * (len(counts) + len(kept))
    for row in rows:
        variant = Variant(row[0], row[1], bool(row[2]))
        values = [float(v or 0) for v in row[len(row) - width:]]
        count_moments = {name: values[3 * i: 3 * i + 3] for i, name in enumerate(counts)}
        ratio_sums = {m: values[3 * (len(counts) + j): 3 * (len(counts) + j) + 3]
                      for j, m in enumerate(kept)}
        for metric in RATIOS:
            if metric not in kept:
                out[(variant, slice_of(row), metric)] = NO_UNITS
                continue
            k, sx, sxx = count_moments[kept[metric][0]]
            sy, syy, sxy = ratio_sums[metric]
            out[(variant, slice_of(row), metric)] = Moments(k, sx, sy, sxx, syy, sxy)


# The moments last read per engine and experiment, with the unit rows' mark they were read at:
# a page whose callbacks each read the results groups the rows once while nothing changed. The
# READ_KEPT experiments read last, per engine: each holds a few KB per slice, and a process
# that serves results for months reads every experiment there ever was.
_READ: weakref.WeakKeyDictionary[
    Any, OrderedDict[int, tuple[tuple[Any, ...], dict[Key, Moments]]]] = \
    weakref.WeakKeyDictionary()
_READ_LOCK = threading.Lock()
READ_KEPT = 32


def load_moments(session: Session, experiment_id: int) -> dict[Key, Moments]:
    """Every variant's moments per slice and for ``all`` (each unit's slices summed first):
    two grouped queries over the experiment's unit rows, unless they are unchanged since the
    last read. The worker only adds to them, each event some predictions or truths, so their
    count and the sums of their count columns mark what they hold, with the errors' sum,
    which a rebuild (:mod:`evaluation.unit_backfill`) may change alone; a count column no unit
    has (numbers in an OCR experiment) is left out of the grouping, whose cost is its sums."""
    t = UnitSums.__table__
    mark = tuple(session.execute(
        select(func.count(), *(func.sum(t.c[c]) for c in (*_COUNTS, "errors")))
        .where(t.c.experiment_id == experiment_id)).one())
    engine = session.get_bind()
    with _READ_LOCK:
        read = _READ.get(engine)
        last = read.get(experiment_id) if read is not None else None
        if last is not None:
            read.move_to_end(experiment_id)
    if last is not None and last[0] == mark:
        return dict(last[1])
    present = tuple(c for c, total in zip(_COUNTS, mark[1:-1], strict=True) if total)
    try:
        with session.begin_nested():  # a failed statement must not end the reader's work
            out = _group_moments(session, experiment_id, present)
    except DataError as exc:  # PostgreSQL: products past float range
        log.warning("experiment %s: its per-unit sums overflow (%s; a number answer beyond 2^53 "
                    "stored by an older release?): it is tested per prediction until `abvoc db "
                    "backfill-unit-sums --experiment %s` rebuilds them", experiment_id,
                    type(exc.orig).__name__, experiment_id)
        out = {}
    with _READ_LOCK:
        read = _READ.setdefault(engine, OrderedDict())
        read[experiment_id] = (mark, out)
        read.move_to_end(experiment_id)
        while len(read) > READ_KEPT:
            read.popitem(last=False)
    return dict(out)


def _group_moments(session: Session, experiment_id: int,
                   counts: tuple[str, ...] = _COUNTS) -> dict[Key, Moments]:
    t = UnitSums.__table__
    out: dict[Key, Moments] = {}
    per_slice = (select(t.c.arm, t.c.candidate, t.c.shadow, t.c.slice,
                        *_moment_columns(t, counts))
                 .where(t.c.experiment_id == experiment_id)
                 .group_by(t.c.arm, t.c.candidate, t.c.shadow, t.c.slice))
    _read(session.execute(per_slice), lambda r: r[3], counts, out)
    used = {name for x_name, terms in _ratios_over(counts).values()
            for name in (x_name, *(column for _, column in terms))}
    units = (select(t.c.arm, t.c.candidate, t.c.shadow,
                    *(func.sum(t.c[c]).label(c) for c in agg.UNIT_COLUMNS if c in used))
             .where(t.c.experiment_id == experiment_id)
             .group_by(t.c.arm, t.c.candidate, t.c.shadow, t.c.unit_id)).subquery()
    overall = (select(units.c.arm, units.c.candidate, units.c.shadow,
                      *_moment_columns(units, counts))
               .group_by(units.c.arm, units.c.candidate, units.c.shadow))
    _read(session.execute(overall), lambda r: ALL, counts, out)
    return out


def analyse(moments: dict[Key, Moments], totals: Mapping[Key, tuple[float, float]],
            stale: str = STALE, unmatched: str = UNMATCHED) -> UnitAnalysis:
    """Which metrics the tests take per unit. ``totals`` holds the aggregates' count and sum
    of each (variant, slice, metric) that has data; the unit sums must account for both (so
    sums rebuilt from stored rows, :mod:`evaluation.unit_backfill`, are used only where they
    are exact). A metric whose sums do not is left per prediction with `stale` where the unit
    sums miss predictions, else with `unmatched`: a note names no cause it has not seen."""
    held = all(abs(moments.get(k, NO_UNITS).sx - n) <= 0.5 for k, (n, _) in totals.items()
               if k[2] == "error_rate")  # x: the predictions, every one with or without data
    per_unit, fallback = set(), {}
    for metric in METRIC_COLUMNS:
        keys = [k for k in totals if k[2] == metric and totals[k][0] > 0]
        if not keys:
            continue
        missing = [k for k in keys if not _accounts_for(moments.get(k, NO_UNITS), *totals[k])]
        if missing:
            fallback[metric] = unmatched if held else stale
            continue
        if any(moments[k].clustered for k in keys):
            per_unit.add(metric)
    return UnitAnalysis(moments, frozenset(per_unit), fallback)


def _accounts_for(moments: Moments, n: float, total: float) -> bool:
    """Whether unit sums hold an aggregate's count and sum (sums of floats added in another
    order differ in their last bits)."""
    return abs(moments.sx - n) <= 0.5 and abs(moments.sy - total) <= 1e-6 * max(
        1.0, abs(total))


def unit_analysis(session: Session, experiment_id: int, cells: Mapping[Any, Cell],
                  relabelled: list[agg.Accumulator], *, since: datetime | None = None,
                  until: datetime | None = None,
                  recounts: Recounts | None = None) -> UnitAnalysis:
    """The unit analysis of an experiment's cells (``(variant, slice)`` -> cell, read for the
    window ``since``/``until``), ``relabelled`` the verified labels' changes (see
    :func:`evaluation.online.load_cells`). The unit sums cover the whole experiment, so a
    window that leaves some of its hours out is tested per prediction (:data:`WINDOWED`), or,
    given `recounts`, per unit from its stored predictions, recounted
    (:mod:`evaluation.unit_recount`: one pass over them, for a report rather than a page) and
    kept there for the next analysis of the same window."""
    totals = {(v, s, m): metric_stats(cell, m)[:2]
              for (v, s), cell in cells.items() for m in METRIC_COLUMNS}
    if _whole_experiment(session, experiment_id, since, until):
        moments = load_moments(session, experiment_id)
        if relabelled:
            apply_relabels(session, experiment_id, moments, *relabelled)
        analysis = analyse(moments, totals)
        if UNMATCHED in analysis.fallback.values() and _failures_unsaid(session, experiment_id):
            analysis.fallback.update({m: UNWATCHED for m, why in analysis.fallback.items()
                                      if why == UNMATCHED})
        return analysis
    if recounts is None:
        return UnitAnalysis({}, frozenset(), {k[2]: WINDOWED for k, t in totals.items() if t[0]})
    window = (experiment_id, *hour_window(since, until))
    if window not in recounts:
        started = time.perf_counter()
        recounts[window], read = recount(session, *window)
        log.info("experiment %s: the units of %d predictions in %s .. %s recounted in %.1f s",
                 experiment_id, read, window[1], window[2], time.perf_counter() - started)
    rows = recounts[window]
    moments = moments_of(rows)
    if relabelled:
        apply_relabels(session, experiment_id, moments, *relabelled, stored_rows=rows)
    return analyse(moments, totals, RECOUNTED, RECOUNTED)


def _failures_unsaid(session: Session, experiment_id: int) -> bool:
    """Whether some of the experiment's predictions were stored before schema 0023 (they do
    not say whether they failed)."""
    p = Prediction
    return bool(session.scalar(select(exists().where(p.experiment_id == experiment_id,
                                                     p.failed.is_(None)))))


def _whole_experiment(session: Session, experiment_id: int, since: datetime | None,
                      until: datetime | None) -> bool:
    """Whether the window holds every hour the experiment has predictions in."""
    start, end = hour_window(since, until)
    if start is None and end is None:
        return True
    t = OnlineAggregate
    first, last = session.execute(select(func.min(t.hour), func.max(t.hour))
                                  .where(t.experiment_id == experiment_id)).one()
    if first is None:
        return True
    first, last = agg.hour_of(first), agg.hour_of(last)  # SQLite's come back without a zone
    return (start is None or start <= first) and (end is None or last < end)


def units_with_predictions(analysis: UnitAnalysis, metrics_by_variant: dict[str, Any],
                           variants: Iterable[Variant]) -> None:
    """Each cell's `units` as the units that sent its predictions (as its per-unit tests count
    them), where the unit sums say: the aggregates count a unit where it was first seen."""
    if not analysis.moments:
        return
    for variant in variants:
        for slice_, figures in metrics_by_variant.get(variant.name, {}).items():
            k = analysis.stats(variant, slice_, "error_rate").k
            if k:
                figures["units"] = int(k)


def describe(analysis: UnitAnalysis, metrics_by_variant: Mapping[str, Any],
             compared: Iterable[str] | None = None) -> tuple[dict[str, Any], str | None]:
    """What the results say of it: the metrics tested per unit and those per prediction (with
    why), and a note where units send several requests each yet a metric counts predictions
    (its intervals and p-values are then too optimistic). Given `compared`, only those
    metrics are named (a number experiment listed token edit distance, which no arm has)."""
    shown = set(compared) if compared is not None else None
    fallback = {m: why for m, why in analysis.fallback.items() if shown is None or m in shown}
    said = {"per_unit": sorted(m for m in analysis.per_unit if shown is None or m in shown),
            "per_prediction": fallback}
    ratios = [m["all"]["predictions"] / m["all"]["units"] for m in metrics_by_variant.values()
              if "all" in m and m["all"].get("units")]
    if not fallback or not ratios or max(ratios) < NOTE_AT:
        return said, None
    reasons = sorted(set(fallback.values()))
    return said, (f"units sent {max(ratios):.1f} predictions each on average (in the arm "
                  "where they sent the most), but "
                  f"{', '.join(sorted(fallback))} count predictions as independent "
                  f"({'; '.join(reasons)}), so their intervals and p-values are too optimistic; "
                  "outcome metrics are per unit (define one as primary to decide per unit)")


def t_interval(moments: Moments, alpha: float, low: float = -math.inf,
               high: float = math.inf) -> tuple[float, float] | None:
    """The (1 - alpha) interval of a metric tested per unit: Student's t on K - 1 degrees of
    freedom over the linearised per-unit values, clipped to the metric's range ``[low,
    high]``; None with fewer than two units."""
    n, mean, _, squares = moments.stats()
    if n < 2:
        return None
    half = float(t_dist.isf(alpha / 2, n - 1)) * math.sqrt(squares / (n - 1) / n)
    return max(mean - half, low), min(mean + half, high)


def share_hull(per_unit: tuple[float, float], per_prediction: Sequence[float | None]
               ) -> tuple[float, float]:
    """A share's per-unit interval widened to cover its Wilson interval over the predictions:
    a share no unit's answers moved (no correction at all, or every answer right) has no
    variance over units, so the delta method's interval had no width, and at a few units it
    covered less than its level (88 % for 95 % at 5 units)."""
    low, high = per_prediction
    return (per_unit[0] if low is None else min(per_unit[0], low),
            per_unit[1] if high is None else max(per_unit[1], high))


# The figures of an arm's metrics that are intervals of a metric the tests may take per unit:
# (figure, metric, lower bound, upper bound, transform of the bounds).
_INTERVALS = (("correction_rate_ci", "correction_rate", 0.0, 1.0, None),
              ("mae_interval", "absolute_error", 0.0, math.inf, None),
              ("rmse_interval", "squared_error", 0.0, math.inf, math.sqrt))


def per_unit_intervals(analysis: UnitAnalysis, metrics_by_variant: dict[str, Any],
                       variants: Iterable[Variant], alpha: float) -> None:
    """Each variant's intervals of the metrics tested per unit (the correction rate, a number
    candidate's MAE and RMSE) from its units (:func:`t_interval`); the intervals over
    predictions would be too narrow."""
    for figure, metric, low, high, transform in _INTERVALS:
        if metric not in analysis.per_unit:
            continue
        for v in variants:
            for slice_, figures in metrics_by_variant.get(v.name, {}).items():
                bounds = t_interval(analysis.stats(v, slice_, metric), alpha, low, high)
                if figures.get(figure) is None or bounds is None:
                    continue
                if metric == "correction_rate":  # a share: never narrower than Wilson's
                    bounds = share_hull(bounds, figures[figure])
                figures[figure] = [transform(b) for b in bounds] if transform else list(bounds)
