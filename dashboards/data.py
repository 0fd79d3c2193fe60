"""What the pages show, read through the same evaluation functions the HTTP API calls.

Plain functions of a :class:`~core.store.db.Database`, so tests call them without a browser and
the pages never call their own service over HTTP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from scipy import stats
from sqlalchemy import func, select

from core.builtin_metrics import NUMBER_METRICS
from core.store.db import Database
from core.store.models import Experiment, OnlineAggregate
from core.times import as_utc
from evaluation import aggregation as agg
from evaluation.label_accuracy import labels_once
from evaluation.label_truths import LabelTruths
from evaluation.online import (
    ALL,
    Cell,
    Cells,
    Variant,
    hour_window,
    load_cells,
    metric_stats,
)
from evaluation.results import CUSTOMER_METRICS, METRICS, experiment_results, variants_of
from evaluation.slices import DEFAULT_MAX_SLICES, SliceChoice, choose_slices
from evaluation.stats.small_samples import wilson_interval
from evaluation.unit_moments import UnitAnalysis, share_hull, t_interval, unit_analysis
from evaluation.unit_recount import recount_affordable
from serving.experiments import Experiments

HOUR = timedelta(hours=1)
SERIES_POINTS = 12


def store() -> Database:
    """The store of the app serving this request."""
    return current_app.extensions["abvoc"].db


def expected_parts() -> tuple[str, ...]:
    """The parts this deployment says it runs (ABVOC_EXPECT_PARTS), judged as /readyz does."""
    return current_app.extensions["abvoc"].settings.expect_parts


def topic_prefix() -> str:
    """This deployment's topic prefix: a part reading another one is judged as /readyz does."""
    return current_app.extensions["abvoc"].settings.topic_prefix


@dataclass(frozen=True)
class Window:
    """A time window of whole hours; ``None`` on a side means open."""

    since: datetime | None = None
    until: datetime | None = None


def experiments(db: Database) -> list[dict[str, Any]]:
    """Every experiment, as ``GET /v1/experiments`` lists them."""
    return Experiments(db).list()


def experiment(db: Database, experiment_id: int) -> dict[str, Any]:
    """One experiment as ``GET /v1/experiments/{id}`` shows it: its status reason, canary and
    the weights traffic follows now (a paused arm's 0, a canary's current step)."""
    return Experiments(db).get(experiment_id)


def hour_range(db: Database, experiment_id: int) -> tuple[datetime, datetime] | None:
    """The first and last hour with online data for the experiment (None before any)."""
    t = OnlineAggregate
    with db.reading() as s:
        first, last = s.execute(select(func.min(t.hour), func.max(t.hour))
                                .where(t.experiment_id == experiment_id)).one()
    if first is None or last is None:
        return None
    return as_utc(first), as_utc(last)


def slices(db: Database, experiment_id: int) -> SliceChoice:
    """``all`` and the slices the experiment's results test: its `DEFAULT_MAX_SLICES` busiest,
    chosen by the results' own rule (:func:`evaluation.slices.choose_slices`), with what was
    left out; a slice left out has no figures, so the page does not offer it."""
    t = OnlineAggregate
    with db.reading() as s:
        rows = s.execute(select(t.arm, t.candidate, t.shadow, t.slice, func.sum(t.n))
                         .where(t.experiment_id == experiment_id, t.metric == agg.PREDICTIONS)
                         .group_by(t.arm, t.candidate, t.shadow, t.slice)).all()
    cells: Cells = {}
    for arm, candidate, shadow, slice_, n in rows:
        cell = cells.setdefault((Variant(arm, candidate, bool(shadow)), slice_), Cell())
        cell.add(agg.PREDICTIONS, "", (n or 0, 0.0, 0.0))
    return choose_slices(cells, DEFAULT_MAX_SLICES)


def labels(db: Database, experiment_id: int, window: Window = Window()) -> LabelTruths:
    """The experiment's verified labels for the window, read once for a page's reads (each
    read alone took them again: 0.3 s at 15k labels)."""
    with db.reading() as s:
        return labels_once(s, experiment_id, *hour_window(window.since, window.until))


def results(db: Database, experiment_id: int, window: Window = Window(),
            units_out: list[UnitAnalysis] | None = None, *,
            per_unit: bool = True, labels: LabelTruths | None = None) -> dict[str, Any]:
    """``GET /v1/experiments/{id}/results`` for the window; ``units_out`` receives its unit
    analysis (for :func:`arm_intervals`); ``per_unit`` False skips grouping the unit sums, for
    a panel that shows no test or interval of a built-in metric; ``labels``: :func:`labels`."""
    with db.reading() as s:
        recount = per_unit and window != Window() and recount_affordable(
            s, window.since, window.until, experiment_id)
        return experiment_results(s, experiment_id, since=window.since, until=window.until,
                                  units_out=units_out, per_unit=per_unit,
                                  recounts={} if recount else None, labels=labels)


def arm_intervals(db: Database, experiment_id: int, slice_: str, window: Window = Window(),
                  alpha: float = 0.05, units: UnitAnalysis | None = None,
                  labels: LabelTruths | None = None) -> list[dict[str, Any]]:
    """Each variant's mean of each metric in a slice with its (1 - alpha) interval: Wilson for
    rates, Student's t for means; over units for the metrics the results test per unit (``n``
    counts units then; ``units``: the results' unit analysis of this window, when the caller
    has it). Metrics without data in a variant are left out."""
    relabelled: list[Any] = []
    with db.reading() as s:
        experiment = s.get(Experiment, experiment_id)
        if experiment is None:
            return []
        variants, _ = variants_of(experiment)
        cells = load_cells(s, experiment_id, since=window.since, until=window.until,
                           relabelled=relabelled, labels=labels)
        if units is None:
            units = unit_analysis(s, experiment_id, cells, relabelled,
                                  since=window.since, until=window.until)
    out = []
    for variant in variants:
        cell = cells.get((variant, slice_), Cell())
        for spec in (*METRICS, *NUMBER_METRICS):
            if variant.shadow and spec.name in CUSTOMER_METRICS:
                continue
            n, total, squares = metric_stats(cell, spec.name)
            if n <= 0:
                continue
            mean = total / n
            if spec.name in units.per_unit:
                moments = units.stats(variant, slice_, spec.name)
                low, high = t_interval(moments, alpha, *spec.bounds) or (math.nan, math.nan)
                if spec.is_proportion and not math.isnan(low):  # as the results' intervals
                    low, high = share_hull((low, high), wilson_interval(total, n, alpha))
                n = moments.k
            elif spec.is_proportion:
                low, high = wilson_interval(total, n, alpha)
            elif n > 1:
                variance = max(squares / n - mean * mean, 0.0) * n / (n - 1)
                half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * math.sqrt(variance / n)
                low, high = max(mean - half, spec.bounds[0]), min(mean + half, spec.bounds[1])
            else:
                low = high = math.nan
            out.append({"variant": variant.name, "shadow": variant.shadow,
                        "metric": spec.name, "n": int(n), "mean": mean,
                        "low": None if math.isnan(low) else low,
                        "high": None if math.isnan(high) else high})
    return out


def outcome_intervals(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Each arm's outcome metrics with their intervals, as the results computed them, in the
    rows of :func:`arm_intervals`. Outcomes are per unit, so they have no slices and count the
    whole experiment; arms without units are left out."""
    names = {v["arm"]: v["name"] for v in res["variants"] if v["arm"] and not v["shadow"]}
    out = []
    for metric, figures in (res.get("outcomes") or {}).items():
        for arm, f in figures["arms"].items():
            if arm in names and f["units"] and f["mean"] is not None:
                low, high = f["interval"]
                out.append({"variant": names[arm], "shadow": False, "metric": metric,
                            "n": int(f["units"]), "mean": f["mean"], "low": low, "high": high})
    return out


def sequential_series(db: Database, experiment_id: int, metric: str, slice_: str,
                      window: Window = Window(), points: int = SERIES_POINTS,
                      labels: LabelTruths | None = None) -> list[dict[str, Any]]:
    """The always-valid (mSPRT) interval of each treatment against control on ``metric``, as
    it stood at the end of each hour of the window: the results recomputed on the data up to
    then, at most ``points`` times (evenly spread, the last hour always included). Every look
    counts predictions (the per-unit sums cover the whole experiment, not each hour), so the
    looks compare with each other. ``labels``: the window's, :func:`labels`."""
    span = hour_range(db, experiment_id)
    if span is None:
        return []
    first = max(span[0], window.since) if window.since else span[0]
    last = min(span[1], window.until - HOUR) if window.until else span[1]
    hours = int((last - first) / HOUR) + 1
    if hours < 1:
        return []
    step = max(1, math.ceil(hours / points))
    ends = [first + HOUR * (i + 1) for i in range(hours - 1, -1, -step)][::-1]
    out = []
    with db.reading() as s:
        # The verified labels read once: every look takes the hours of its own window.
        labels = labels or labels_once(s, experiment_id, *hour_window(window.since, ends[-1]))
        for end in ends:
            # Neither per-slice tests for slice `all` nor latency histograms: the looks read
            # the always-valid figures only (the histograms' decoding was half a look's time).
            res = experiment_results(s, experiment_id, since=window.since, until=end,
                                     per_unit=False, max_slices=0 if slice_ == ALL
                                     else DEFAULT_MAX_SLICES, latency_sketches=False,
                                     labels=labels)
            for r in res["comparisons"]:
                if r["metric"] == metric and r["slice"] == slice_:
                    out.append({"until": end, "treatment": r["treatment"],
                                "difference": r["difference"],
                                "low": r["sequential_ci_low"], "high": r["sequential_ci_high"],
                                "p_value": r["sequential_p_value"]})
    return out

