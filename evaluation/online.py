"""Online metrics per variant and slice, read from the aggregates (never from every row).

A *variant* is what served: an arm's traffic ``(arm, candidate, shadow=False)`` or a shadow
candidate ``("", candidate, True)``. :func:`load_cells` sums the hourly aggregates of an
experiment into one :class:`Cell` per variant and slice, with the verified labels of relabeled
inputs as their answers' truths; :func:`metrics` turns a cell into the figures people read.

Truth comes from corrections (biased towards wrong outputs: customers correct what is wrong) and
from verified labels, which override a correction of the same answer (one rule: a done label of
the prediction's input in its output type is the truth). So ``exact_match`` is the accuracy
*among predictions with a known truth*, and ``accuracy_bound = 1 - (known_wrong + errors) /
predictions`` is an upper bound of the accuracy on all traffic: ``known_wrong`` counts the
answers whose truth differs, ``errors`` the predictions that failed (no answer is not a right
one; a failed prediction's truth is not held against it a second time), and every other
prediction is counted right. A
correction that repeats the answer (a customer confirming it) is a truth that the answer was
right; it counts in the correction rate, which measures what customers did, but never as an
error.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import ColumnElement, and_, func, literal, or_, select
from sqlalchemy.orm import Session

from core.builtin_metrics import MATCH_METRICS, match_metrics_judging
from core.store.models import (
    ExperimentUnit,
    OnlineAggregate,
    OutcomeUnitValue,
    Prediction,
)
from core.store.upsert import in_values
from core.times import as_utc, utc_iso
from evaluation import aggregation as agg
from evaluation import sketch
from evaluation.aggregation import in_window
from evaluation.label_truths import LabelTruths, Rows
from evaluation.stats import LatencyHistogram
from evaluation.stats.small_samples import wilson_interval

ALL = "all"


class Variant(NamedTuple):
    arm: str
    candidate: str
    shadow: bool

    @property
    def name(self) -> str:
        return f"shadow:{self.candidate}" if self.shadow else self.arm or self.candidate


@dataclass
class Cell:
    """Summed statistics of one variant in one slice."""

    sums: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    latency: LatencyHistogram = field(default_factory=lambda: LatencyHistogram.empty(sketch.LAYOUT))
    first_hour: datetime | None = None
    last_hour: datetime | None = None

    def get(self, metric: str, label: str = "") -> np.ndarray:
        """``[n, sum, sum_squares]`` (zeros when absent)."""
        return self.sums.get((metric, label), np.zeros(3))

    def labels(self, metric: str) -> dict[str, np.ndarray]:
        return {lb: v for (m, lb), v in self.sums.items() if m == metric}

    def add(self, metric: str, label: str, values: Iterable[float]) -> None:
        row = np.asarray(list(values), dtype=np.float64)
        key = (metric, label)
        self.sums[key] = self.sums[key] + row if key in self.sums else row

    def merge(self, other: Cell) -> None:
        for (m, lb), v in other.sums.items():
            self.add(m, lb, v)
        self.latency = self.latency + other.latency
        hours = [h for h in (self.first_hour, other.first_hour) if h is not None]
        self.first_hour = min(hours) if hours else None
        hours = [h for h in (self.last_hour, other.last_hour) if h is not None]
        self.last_hour = max(hours) if hours else None


Cells = dict[tuple[Variant, str], Cell]


def _naive(moment: datetime) -> datetime:
    return agg.hour_of(moment).replace(tzinfo=None)


def hour_window(since: datetime | None, until: datetime | None) -> tuple[datetime | None,
                                                                         datetime | None]:
    """A time window widened to whole UTC hours, the grain of the aggregates: ``[since, until)``
    becomes the hours from the one ``since`` falls in up to (without) the first hour that starts
    at or after ``until`` (none past the last hour a datetime holds: the window is then open)."""
    start = agg.hour_of(since) if since is not None else None
    end = None
    if until is not None:
        end = agg.hour_of(until)
        if end < as_utc(until):
            try:
                end += timedelta(hours=1)
            except OverflowError:  # until in year 9999's last hour: no hour starts after it
                end = None
    return start, end


def window_read(since: datetime | None, until: datetime | None) -> dict[str, str | None] | None:
    """The hours a report's figures cover (the aggregates' grain widens a window to whole
    hours), as the reports say them; None without a window."""
    if since is None and until is None:
        return None
    return dict(zip(("since", "until"), map(utc_iso, hour_window(since, until)), strict=True))


def load_cells(session: Session, experiment_id: int, *, with_relabels: bool = True,
               since: datetime | None = None, until: datetime | None = None,
               relabelled: list[agg.Accumulator] | None = None,
               latency_sketches: bool = True, labels: LabelTruths | None = None) -> Cells:
    """Every variant x slice of an experiment (0: predictions outside any experiment), plus a
    slice ``all`` per variant; with ``since``/``until``, only the hours of that window (see
    :func:`hour_window`). ``relabelled``, when given, receives the verified labels' truths
    added and taken out (two accumulators), whose per-unit sums the unit analysis needs.
    ``latency_sketches`` False leaves the latency histograms empty (their decoding is most of
    a read, and a caller that reads no percentile or rank test needs none). ``labels``: the
    verified labels, read once for many reads (:class:`evaluation.label_truths.LabelTruths`)."""
    t = OnlineAggregate
    start, end = hour_window(since, until)
    cells: Cells = defaultdict(Cell)
    rows = session.execute(
        select(t.arm, t.candidate, t.shadow, t.slice, t.metric, t.label, func.sum(t.n),
               func.sum(t.sum), func.sum(t.sum_squares), func.min(t.hour), func.max(t.hour))
        .where(t.experiment_id == experiment_id, *in_window(t.hour, start, end))
        .group_by(t.arm, t.candidate, t.shadow, t.slice, t.metric, t.label)
    )
    for arm, cand, shadow, slice_, metric, label, n, s, ss, lo, hi in rows:
        cell = cells[(Variant(arm, cand, bool(shadow)), slice_)]
        cell.add(metric, label, (n or 0, s or 0.0, ss or 0.0))
        if metric == agg.PREDICTIONS:
            cell.first_hour, cell.last_hour = _naive(lo), _naive(hi)
    sketches = session.execute(
        select(t.arm, t.candidate, t.shadow, t.slice, t.sketch)
        .where(t.experiment_id == experiment_id, t.metric == agg.LATENCY,
               *in_window(t.hour, start, end))
    ) if latency_sketches else ()
    for arm, cand, shadow, slice_, data in sketches:
        cell = cells[(Variant(arm, cand, bool(shadow)), slice_)]
        cell.latency = cell.latency + sketch.decode(data)
    if with_relabels:
        if labels is None:
            labels = LabelTruths.read(session, experiment_id, start, end)
        added, taken = labels.within(start, end, relabelled)
        _add_rows(cells, added, 1.0)
        _add_rows(cells, taken, -1.0)
    for (variant, slice_), cell in list(cells.items()):
        if slice_ != ALL:
            cells[(variant, ALL)].merge(cell)
    _count_units_once(session, experiment_id, cells, start, end)
    return dict(cells)


def units_by_arm(session: Session, experiment_id: int, start: datetime | None = None,
                 end: datetime | None = None, leaving_out: Collection[str] = ()
                 ) -> dict[str, int]:
    """Per arm, the distinct units (less `leaving_out`) first served, any slice, in ``[start,
    end)`` (open ends: all); each once, as the SRM check needs (aggregates: once per slice)."""
    u = ExperimentUnit
    first = (select(u.arm, u.unit_id, func.min(u.first_seen).label("first"))
             .where(u.experiment_id == experiment_id).group_by(u.arm, u.unit_id))
    if leaving_out:
        first = first.where(~in_values(session, u.unit_id, sorted(leaving_out)))
    if start is not None or end is not None:
        first = first.having(and_(*in_window(func.min(u.first_seen), start, end)))
    seen = first.subquery()
    rows = session.execute(select(seen.c.arm, func.count()).group_by(seen.c.arm))
    return {arm: int(n) for arm, n in rows}


def first_seen_units(experiment_id: int, start: datetime | None,
                     end: datetime | None) -> Any:
    """The ids of the experiment's units whose first sighting (first prediction, any slice,
    any arm; the hour of ``experiment_units.first_seen``) fell in ``[start, end)``."""
    u = ExperimentUnit
    return (select(u.unit_id).where(u.experiment_id == experiment_id).group_by(u.unit_id)
            .having(and_(*in_window(func.min(u.first_seen), start, end))))


def outcome_units_in_window(experiment_id: int, start: datetime | None,
                            end: datetime | None) -> ColumnElement[bool] | None:
    """The outcome rows (``outcome_unit_values``) of the units first seen in ``[start, end)``,
    as a filter, so a time window keeps each unit's outcomes, whenever they arrived, with the
    hour the unit entered the experiment, as the built-in metrics count it. A unit known only
    by its prediction (``prediction:<id>``) was first seen when that prediction was made. None
    when both sides are open: every row counts."""
    if start is None and end is None:
        return None
    p = Prediction
    pseudo = (select(literal("prediction:") + p.prediction_id)
              .where(p.experiment_id == experiment_id, *in_window(p.created_at, start, end)))
    t = OutcomeUnitValue
    return or_(t.unit_id.in_(first_seen_units(experiment_id, start, end)),
               t.unit_id.in_(pseudo))


def _count_units_once(session: Session, experiment_id: int, cells: Cells,
                      start: datetime | None, end: datetime | None) -> None:
    """Each arm's ``all`` cell holds its distinct units (:func:`units_by_arm`), not the sum of
    the per-slice counts; where two candidates served one arm, that arm's cells keep the sums
    (units are recorded per arm, not per candidate)."""
    served: dict[str, list[Cell]] = defaultdict(list)
    for (variant, slice_), cell in cells.items():
        if slice_ == ALL and not variant.shadow and variant.arm:
            served[variant.arm].append(cell)
    if not served:
        return
    units = units_by_arm(session, experiment_id, start, end)
    for arm, arm_cells in served.items():
        if len(arm_cells) == 1:
            n = float(units.get(arm, 0))
            arm_cells[0].sums[(agg.UNITS, "")] = np.array([n, n, n])


def _add_rows(cells: Cells, rows: Rows, sign: float) -> None:
    """Add (or with ``sign`` -1 take out) an accumulator's truth rows, the customers'
    ``corrected`` count left alone; a row taken down to no predictions is dropped."""
    for row in rows:
        if row["metric"] == agg.CORRECTED:
            continue  # a label is a truth, not a customer's correction: the rate stays theirs
        cell = cells[(Variant(row["arm"], row["candidate"], row["shadow"]), row["slice"])]
        cell.add(row["metric"], row["label"],
                 (sign * row["n"], sign * row["sum"], sign * row["sum_squares"]))
        key = (row["metric"], row["label"])
        if sign < 0 and abs(cell.sums[key][0]) < 0.5:
            del cell.sums[key]


def expected_calibration_error(cell: Cell) -> float | None:
    """ECE over equal-width confidence bins: ``sum_b n_b / N * |accuracy_b - confidence_b|``
    (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017)."""
    bins = cell.labels(agg.CALIBRATION)
    total = sum(v[0] for v in bins.values())
    if total == 0:
        return None
    return float(sum(v[0] / total * abs(v[1] / v[0] - v[2] / v[0]) for v in bins.values()
                     if v[0] > 0))


def output_shares(cell: Cell) -> dict[str, float]:
    counts = {lb: v[0] for lb, v in cell.labels(agg.OUTPUT).items()}
    total = sum(counts.values())
    return {lb: c / total for lb, c in sorted(counts.items())} if total else {}


def estimated_label_counts(cell: Cell) -> dict[str, float]:
    """Online class counts with each corrected output replaced by its truth (uncorrected outputs
    taken as right): ``output - corrected_output + truth`` per class."""
    out: dict[str, float] = defaultdict(float)
    for metric, sign in ((agg.OUTPUT, 1), (agg.CORRECTED_OUTPUT, -1), (agg.TRUTH, 1)):
        for lb, v in cell.labels(metric).items():
            out[lb] += sign * v[0]
    return {lb: c for lb, c in sorted(out.items()) if c > 0}


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b > 0 else None


_UNOBSERVED_FOR_SHADOWS: dict[str, Any] = {
    "corrections": None, "correction_rate": None, "correction_rate_ci": None,
    "accuracy_bound": None,
}


def metrics(cell: Cell, alpha: float = 0.05, *, shadow: bool = False,
            output_type: str | None = None) -> dict[str, Any]:
    """The online figures of one variant x slice, JSON-ready (None where there is no data).

    A shadow's answers reach no customer, so nothing about corrections is observed for it.
    A matching metric its answers are not judged by (`output_type`: token edit distance of a
    number or a JSON answer, exact match of a number) is None, not a figure that reads as one
    (a number arm showed a token edit distance of 1.0)."""
    n = float(cell.get(agg.PREDICTIONS)[0])
    corrected = float(cell.get(agg.CORRECTED)[1])
    truth_n, exact, _ = cell.get(agg.EXACT_MATCH)
    ted_n, ted_sum, _ = cell.get(agg.TOKEN_EDIT_DISTANCE)
    conf_n, conf_sum, _ = cell.get(agg.CONFIDENCE)
    lat_n, lat_sum, _ = cell.get(agg.LATENCY)
    q = cell.latency.quantile([0.5, 0.95, 0.99]) if cell.latency.count else [None] * 3
    hours = 0.0
    if cell.first_hour is not None and cell.last_hour is not None:
        hours = (cell.last_hour - cell.first_hour).total_seconds() / 3600 + 1
    low, high = wilson_interval(corrected, n, alpha)
    known_wrong = truth_n - exact  # truths of answers: a failed prediction's are not counted
    errors = float(cell.get(agg.ERRORS)[1])
    return {
        "predictions": int(n),
        "units": int(cell.get(agg.UNITS)[0]),
        "errors": int(errors),
        "error_rate": _ratio(cell.get(agg.ERRORS)[1], n),
        "corrections": int(corrected),
        "correction_rate": _ratio(corrected, n),
        "correction_rate_ci": [low, high] if n else None,
        "accuracy_bound": None if n == 0 else 1 - (known_wrong + errors) / n,
        "truth_known": int(truth_n),
        "known_wrong": int(round(known_wrong)),
        "exact_match": _ratio(exact, truth_n),
        "token_edit_distance": _ratio(ted_sum, ted_n),
        "mean_confidence": _ratio(conf_sum, conf_n),
        "expected_calibration_error": expected_calibration_error(cell),
        "latency_mean_ms": _ratio(lat_sum, lat_n),
        "latency_p50_ms": None if q[0] is None else float(q[0]),
        "latency_p95_ms": None if q[1] is None else float(q[1]),
        "latency_p99_ms": None if q[2] is None else float(q[2]),
        "throughput_per_hour": n / hours if hours else None,
        "output_shares": output_shares(cell),
    } | (_UNOBSERVED_FOR_SHADOWS if shadow else {}) | {
        m: None for m in MATCH_METRICS - match_metrics_judging(output_type)}


def metric_stats(cell: Cell, metric: str) -> tuple[float, float, float]:
    """``(n, sum, sum_squares)`` of a metric in a cell, from the aggregate rows.

    The store keeps plain sums (no shift): its mean metrics (latency in ms, confidence, token
    edit distance) have means within a few hundred spreads of zero, where plain sums lose less
    than 1e-10 of the variance. Data whose mean dwarfs its spread goes through
    :class:`~evaluation.stats.ExperimentAggregates`, which centres such cells itself.
    """
    n_pred = float(cell.get(agg.PREDICTIONS)[0])
    if metric == "correction_rate":
        corrected = float(cell.get(agg.CORRECTED)[1])
        return n_pred, corrected, corrected
    if metric == "error_rate":
        errors = float(cell.get(agg.ERRORS)[1])
        return n_pred, errors, errors
    source = {"exact_match": agg.EXACT_MATCH, "token_edit_distance": agg.TOKEN_EDIT_DISTANCE,
              "latency_ms": agg.LATENCY, "confidence": agg.CONFIDENCE,
              "absolute_error": agg.ABSOLUTE_ERROR, "squared_error": agg.SQUARED_ERROR}[metric]
    return finite_sums(cell.get(source))


def finite_sums(sums: Iterable[float]) -> tuple[float, float, float]:
    """``(n, sum, sum_squares)`` as floats, or no data when a sum is not finite: a store
    written before numbers were bounded may hold an error whose square overflowed, and every
    figure of the metric would be NaN (the tests refused it, and the page with them)."""
    n, s, ss = (float(x) for x in sums)
    return (n, s, ss) if math.isfinite(s) and math.isfinite(ss) else (0.0, 0.0, 0.0)
