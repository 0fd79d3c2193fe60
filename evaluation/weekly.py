"""What the weekly evaluation report says, gathered as plain data for one ISO week (UTC).

The report renders this (``dashboards/report``); keeping the gathering here, as functions of a
session, lets tests check the figures without a browser and keeps the store queries beside the
evaluation code they reuse: :func:`evaluation.results.experiment_results` for the week and the
one before it, and :func:`evaluation.divergence.divergence_with_stages` for the week.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.errors import AbvocError
from core.store.models import (
    Correction,
    Experiment,
    OnlineAggregate,
    Prediction,
    RelabelItem,
    RelabelLabel,
)
from core.text import shown
from core.times import as_utc, utc_iso
from evaluation.divergence import divergence_with_stages
from evaluation.online import ALL, hour_window
from evaluation.results import experiment_results
from evaluation.unit_moments import Recounts

WEEK_PATTERN = r"[0-9]{4}-W[0-9]{2}"
TO_DATE = "-to-date"
"""What a report of a week so far adds to the week's name: ``2026-W49-to-date``."""
_WEEK = re.compile(rf"^{WEEK_PATTERN}$")
TREND_METRICS = ("correction_rate", "error_rate", "exact_match", "latency_mean_ms",
                 "mean_confidence")
# A number candidate's answers are never an exact match and carry no confidence: its errors
# are what moves from week to week.
NUMBER_TREND_METRICS = ("correction_rate", "error_rate", "mae", "rmse", "latency_mean_ms")
# A built-in primary metric's figure in a variant's metrics, and its interval's (None: none).
PRIMARY_FIGURES = {"correction_rate": ("correction_rate", "correction_rate_ci"),
                   "error_rate": ("error_rate", None), "exact_match": ("exact_match", None),
                   "token_edit_distance": ("token_edit_distance", None),
                   "latency_ms": ("latency_mean_ms", None), "confidence": ("mean_confidence", None),
                   "absolute_error": ("mae", "mae_interval")}
EXAMPLES = 8
LABEL_ACTIONS = ("label", "resolve")  # the acts that give an item a label (not skip or flag)


def parse_week(week: str) -> date:
    """The Monday of an ISO week written ``YYYY-Www``; a 400 that says the form otherwise."""
    if not isinstance(week, str) or not _WEEK.fullmatch(week):
        raise AbvocError(f"week {shown(week)} must look like 2026-W48 (ISO year, 'W', two "
                         "digits)")
    year, number = int(week[:4]), int(week[6:])
    try:
        monday = date.fromisocalendar(year, number, 1)
    except ValueError as exc:
        raise AbvocError(f"week {week!r} does not exist: ISO year {year} has no week "
                         f"{number}") from exc
    try:  # the report reads the week before and the day after: both must be dates too
        monday - timedelta(days=7), monday + timedelta(days=7)
    except OverflowError:
        raise AbvocError(f"week {week!r} is out of range: give a week from 0001-W02 to "
                         "9999-W51") from None
    return monday


def week_name(day: date) -> str:
    """``YYYY-Www`` of the ISO week holding ``day``: four digits even before the year 1000, as
    :func:`parse_week` takes it (the report of 1000-W01 was compared with "999-W52")."""
    year, number, _ = day.isocalendar()
    return f"{year:04d}-W{number:02d}"


def week_bounds(week: str) -> tuple[datetime, datetime]:
    """Monday 00:00 UTC of the week and of the next one."""
    start = datetime.combine(parse_week(week), time(), tzinfo=UTC)
    return start, start + timedelta(days=7)


def previous_week(week: str) -> str:
    return week_name(parse_week(week) - timedelta(days=7))


def last_full_week(now: datetime) -> str:
    """The latest ISO week that ended before ``now`` (UTC)."""
    return week_name(now.astimezone(UTC).date() - timedelta(days=7))


def current_week(now: datetime) -> str:
    """The ISO week ``now`` falls in (UTC)."""
    return week_name(now.astimezone(UTC).date())


def so_far(week: str, now: datetime) -> datetime:
    """Where a report of ``week`` so far ends: the end of the hour ``now`` falls in, the
    aggregates' grain (so the current hour's traffic is in). A 400 for a week that is over
    (its whole report is due) or has not begun."""
    since, end = week_bounds(week)
    if now >= end:
        raise AbvocError(f"week {week} is over: its whole report is `abvoc report --week {week}` "
                         "(leave out --to-date)")
    if now < since:
        raise AbvocError(f"week {week} begins on {since:%Y-%m-%d} UTC: a report of a week so "
                         f"far is of the current one, {current_week(now)}")
    until = hour_window(None, now)[1]
    return end if until is None else min(until, end)


def _day(moment: datetime) -> date:
    """The UTC day of a stored time (SQLite gives it back without a zone, in UTC)."""
    return as_utc(moment).date()


def _with_traffic(session: Session, since: datetime, until: datetime) -> set[int]:
    t = OnlineAggregate
    return set(session.scalars(select(t.experiment_id).where(
        t.hour >= since, t.hour < until).distinct()).all())


def _active_experiments(session: Session, since: datetime, until: datetime) -> list[Experiment]:
    ids = _with_traffic(session, since, until)
    if not ids:
        return []
    return list(session.scalars(select(Experiment).where(Experiment.id.in_(ids))
                                .order_by(Experiment.id)))


def _running_without_traffic(session: Session, busy: set[int],
                             until: datetime) -> list[dict[str, Any]]:
    """Experiments running now, started before the week ended, that served nothing in it
    (`busy`: those that did): a stalled rollout or a broken route is what a lead reads the
    report to catch."""
    # Started, not created, before the end: a draft of the week started after it ended (the
    # report is due at Monday 06:00) served nothing in it because it was not running.
    running = session.scalars(select(Experiment).where(
        Experiment.status == "running", Experiment.created_at < until,
        or_(Experiment.started_at.is_(None), Experiment.started_at < until))
        .order_by(Experiment.id))
    return [{"id": e.id, "name": e.name, "status": e.status} for e in running
            if e.id not in busy]


def primary_figure(results: dict[str, Any], variant: dict[str, Any],
                   metric: str) -> dict[str, float | None]:
    """A variant's figure on ``metric`` on slice ``all`` with its interval: an outcome
    metric's per-arm mean, a built-in one's online figure; all None where the results carry
    none (a shadow has no outcomes; only a number candidate has errors)."""
    value = low = high = None
    outcome = (results.get("outcomes") or {}).get(metric)
    figures = results["metrics"].get(variant["name"], {}).get(ALL) or {}
    if outcome is not None:
        arm = outcome["arms"].get(variant.get("arm") or variant["name"]) or {}
        value, (low, high) = arm.get("mean"), arm.get("interval") or (None, None)
    elif metric == "squared_error":  # the mean squared error: the RMSE and its bounds squared
        rmse, bounds = figures.get("rmse"), figures.get("rmse_interval") or (None, None)
        value = None if rmse is None else rmse ** 2
        low, high = (None if b is None else b ** 2 for b in bounds)
    elif metric in PRIMARY_FIGURES:
        key, interval = PRIMARY_FIGURES[metric]
        value = figures.get(key)
        low, high = (figures.get(interval) or (None, None)) if interval else (None, None)
    return {"value": value, "low": low, "high": high}


def primary_interval(results: dict[str, Any], metric: str) -> str:
    """What the interval :func:`primary_figure` gives is, in words a chart's title can carry:
    a built-in metric tested per unit has the delta method's interval over units, a correction
    rate per prediction Wilson's."""
    if metric not in (results.get("outcomes") or {}) \
            and metric in results["analysis_unit"]["per_unit"]:
        return "interval over units (delta method)"
    return "Wilson interval" if metric == "correction_rate" else "confidence interval"


def _trends(this: dict[str, Any], before: dict[str, Any]) -> list[dict[str, Any]]:
    """Per variant: the primary metric first (an outcome one included), then the operating
    figures its output type makes sense of."""
    primary = this["experiment"]["primary_metric"]
    own = PRIMARY_FIGURES.get(primary, (primary, None))[0]
    rows = []
    for variant in this["variants"]:
        name = variant["name"]
        now = this["metrics"].get(name, {}).get(ALL) or {}
        then = before["metrics"].get(name, {}).get(ALL) or {}
        then_variant = next((v for v in before["variants"] if v["name"] == name), variant)
        pairs = [(primary, primary_figure(before, then_variant, primary)["value"],
                  primary_figure(this, variant, primary)["value"])]
        number = variant.get("output_type") == "number"
        pairs += [(m, then.get(m), now.get(m))
                  for m in (NUMBER_TREND_METRICS if number else TREND_METRICS) if m != own]
        for metric, a, b in pairs:
            rows.append({"variant": name, "metric": metric, "previous": a, "current": b,
                         "change": None if a is None or b is None else b - a,
                         "primary": metric == primary})
    return rows


def experiment_week(session: Session, experiment: Experiment, week: str,
                    until: datetime | None = None) -> dict[str, Any]:
    """One experiment's results for the week (up to `until`, for a week so far) and the whole
    week before, its decision, the divergence findings and the week-over-week rows."""
    since, end = week_bounds(week)
    until = until or end
    recounts: Recounts = {}  # the week's units, recounted once for both analyses
    this = experiment_results(session, experiment.id, since=since, until=until,
                              recounts=recounts)
    before = experiment_results(session, experiment.id, since=since - timedelta(days=7),
                                until=since)
    divergence = divergence_with_stages(session, experiment.id, since=since, until=until,
                                        recounts=recounts)
    comparisons = [c for c in this["comparisons"] if c["slice"] == ALL]
    return {"id": experiment.id, "name": experiment.name, "status": experiment.status,
            "primary_metric": this["experiment"]["primary_metric"],
            "primary_interval": primary_interval(this, this["experiment"]["primary_metric"]),
            "outcome_metrics": sorted(this.get("outcomes") or {}),
            "primary": {v["name"]: primary_figure(this, v, this["experiment"]["primary_metric"])
                        for v in this["variants"]},
            "trustworthy": this["trustworthy"], "decision": this["decision"],
            "variants": [v["name"] for v in this["variants"]],
            "figures": {v: m.get(ALL) for v, m in this["metrics"].items() if m.get(ALL)},
            "comparisons": comparisons, "analysis_unit_note": this["analysis_unit_note"],
            # Units served in two arms, left out of the outcome metrics (evaluation.several_arms)
            "several_arms_note": (this.get("units_in_several_arms") or {}).get("note"),
            "findings": divergence["findings"],
            # Each candidate version's wrong answers of the week by the stage blamed.
            "stages": [r for r in divergence["stage_attribution"]["rows"]
                       if r["slice"] == ALL and r["errors"]],
            "divergence_slices": divergence["slices"], "trends": _trends(this, before)}


def voc_week(session: Session, since: datetime, until: datetime) -> dict[str, Any]:
    """The week's corrections: how many, by candidate and by slice, and a few examples."""
    rows = session.execute(
        select(Correction.corrected_output, Correction.comment, Correction.rating,
               Correction.created_at, Prediction.candidate, Prediction.slice,
               Prediction.output)
        .join(Prediction, Prediction.prediction_id == Correction.prediction_id, isouter=True)
        .where(Correction.created_at >= since, Correction.created_at < until)
        .order_by(Correction.created_at.desc(), Correction.correction_id)).all()
    by_candidate = Counter(r.candidate or "(pruned)" for r in rows)
    by_slice = Counter(r.slice or "(pruned)" for r in rows)
    with_comment = [r for r in rows if r.comment]
    picked = (with_comment + [r for r in rows if not r.comment])[:EXAMPLES]
    return {"total": len(rows), "by_candidate": dict(by_candidate.most_common()),
            "by_slice": dict(by_slice.most_common()),
            "examples": [{"candidate": r.candidate, "slice": r.slice, "output": r.output,
                          "corrected_output": r.corrected_output, "comment": r.comment,
                          "rating": r.rating, "at": utc_iso(r.created_at)} for r in picked]}


def relabel_week(session: Session, since: datetime, until: datetime) -> dict[str, Any]:
    """Relabeling throughput: items queued and labeled per day of the week (its days begun by
    `until`, for a week so far), open at its end.

    Queued: items the rules queued from traffic in the week; labeled: items an annotator
    labeled in the week, on the day of their last label in it (their label rows: an item's
    ``labeled_at`` moves when a resolution elsewhere settles it). Copies that
    :func:`evaluation.relabel_enqueue.route_label` made from another item's label are
    neither: nobody queued or labeled them; ``copied`` counts those made in the week."""
    t, lb = RelabelItem, RelabelLabel
    lo, hi = since, until
    made = session.execute(select(t.created_at, t.routed_from.is_not(None)).where(
        t.created_at >= lo, t.created_at < hi)).all()
    queued = [at for at, copy in made if not copy]
    labeled = session.scalars(select(func.max(lb.created_at)).where(
        lb.action == "label", lb.created_at >= lo, lb.created_at < hi)
        .group_by(lb.item_id)).all()
    # Unlabeled at the week's end, and not displaced from its queue by then (an item dropped
    # before dropped_at was kept counts as dropped at an unknown time).
    still_open = session.scalar(select(func.count()).select_from(t).where(
        t.created_at < hi, (t.labeled_at.is_(None)) | (t.labeled_at >= hi),
        (t.status != "dropped") | (t.dropped_at >= hi))) or 0
    # Every UTC day the window touches: one that does not begin at midnight (a window of the
    # last hours) has a day its first day's time of day would step past.
    first, last = _day(since), _day(until - timedelta(microseconds=1))
    days = [first + timedelta(days=d) for d in range((last - first).days + 1)]
    per_day_q = Counter(_day(m) for m in queued)
    per_day_l = Counter(_day(m) for m in labeled)
    return {"queued": len(queued), "labeled": len(labeled), "copied": len(made) - len(queued),
            "open_at_end": int(still_open),
            "annotators": _annotators(session, since, until),
            "days": [{"day": d.isoformat(), "queued": per_day_q[d], "labeled": per_day_l[d]}
                     for d in days]}


def _annotators(session: Session, since: datetime, until: datetime) -> int:
    """The people who labeled (or, as admins, resolved) items in the week, from their own label
    rows: an item's ``annotator`` joins its annotators' names ("alice,bob"), so counting those
    would count combinations of people, not people."""
    lb = RelabelLabel
    return int(session.scalar(select(func.count(func.distinct(lb.annotator))).where(
        lb.action.in_(LABEL_ACTIONS), lb.created_at >= since, lb.created_at < until)) or 0)


def weekly_data(session: Session, week: str, *, now: datetime | None = None,
                progress: Callable[[int, int], None] | None = None,
                until: datetime | None = None) -> dict[str, Any]:
    """Everything the report of ``week`` shows, JSON-ready; `progress` is told the experiments
    done so far and their number (each recounts the week's units: seconds for a large one).
    `until` (:func:`so_far`) ends a week not over yet: the report of the week so far."""
    since, end = week_bounds(week)
    until = min(until, end) if until else end
    now = now or datetime.now(UTC)
    experiments = _active_experiments(session, since - timedelta(days=7), until)
    # The week's own: the report also shows those that served only the week before (their
    # week over week), which the summary must not count as having traffic this week.
    busy = _with_traffic(session, since, until)
    weeks, failed = [], []
    for done, e in enumerate(experiments, 1):
        try:
            weeks.append(experiment_week(session, e, week, until))
        except (ValueError, ArithmeticError, AbvocError) as exc:
            # One experiment whose figures cannot be computed must not take the others' report
            # down with it (a stored sum past float range did, every Monday): it is named.
            failed.append({"id": e.id, "name": e.name, "reason": str(exc)[:200]})
        if progress is not None:
            progress(done, len(experiments))
    return {"week": week, "previous_week": previous_week(week), "since": since.isoformat(),
            # In the week's last hour a week so far ends where the week does: not over yet.
            "until": until.isoformat(), "to_date": until < end or now < end,
            "generated_at": now.isoformat(timespec="seconds"),
            "experiments": weeks, "failed": failed, "with_traffic": len(busy),
            "no_traffic": _running_without_traffic(session, busy, until),
            "voc": voc_week(session, since, until), "relabel": relabel_week(session, since, until)}
