"""What the Operations page reads: traffic, latency and errors per candidate and hour from the
online aggregates, the last minutes from the API's served-prediction ledger, the guardrails'
events (experiments a guardrail or an operator stopped, paused arms), the outbox backlog and
the loops' heartbeats.

Windows end at the newest data, not at the clock: a store replayed or seeded later still shows
its last hours. A rate is requests over the seconds of its window that the service was serving:
an hour (or the ledger's minutes) the first requests fall in, or the newest one, cut at the
first and the newest data, so a service up for three minutes shows the rate it served at, not
that rate spread over an hour.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select

from core.health import component_checks, outbox_lag_s
from core.outbox import pending_count
from core.store.db import Database
from core.store.models import (
    ComponentHeartbeat,
    Experiment,
    OnlineAggregate,
    Prediction,
    ServedPrediction,
)
from evaluation import aggregation as agg
from evaluation import sketch
from evaluation.stats import LatencyHistogram

HOUR = timedelta(hours=1)
MIN_SPAN_S = 1.0  # a rate over less than this is no rate
QUANTILES = (0.5, 0.95, 0.99)
LEDGER_MINUTES = 15


def candidates(db: Database) -> list[str]:
    """The candidates with online traffic."""
    t = OnlineAggregate
    with db.reading() as s:
        return list(s.scalars(select(t.candidate).where(t.metric == agg.PREDICTIONS)
                              .distinct().order_by(t.candidate)))


def _rate(n: int, seconds: float) -> float | None:
    return n / seconds if seconds >= MIN_SPAN_S else None


def hourly(db: Database, hours: int | None = 24,
           candidate: str | None = None) -> list[dict[str, Any]]:
    """Per candidate and hour (the last ``hours`` hours with data; None: all): requests per
    second (over the part of the hour between the first and the newest stored prediction),
    error rate, latency p50/p95/p99 (from the merged latency sketches)."""
    t = OnlineAggregate
    where = [] if candidate is None else [t.candidate == candidate]
    with db.reading() as s:
        last = s.scalar(select(func.max(t.hour)).where(*where))
        if last is None:
            return []
        if hours is not None:
            where.append(t.hour > last - HOUR * hours)
        counts = s.execute(select(t.candidate, t.hour, t.metric, func.sum(t.n), func.sum(t.sum))
                           .where(t.metric.in_((agg.PREDICTIONS, agg.ERRORS)), *where)
                           .group_by(t.candidate, t.hour, t.metric)).all()
        sketches = s.execute(select(t.candidate, t.hour, t.sketch)
                             .where(t.metric == agg.LATENCY, t.sketch.is_not(None), *where)).all()
        first, newest = s.execute(select(func.min(Prediction.created_at),
                                         func.max(Prediction.created_at))).one()
    rows: dict[tuple[str, datetime], dict[str, Any]] = defaultdict(dict)
    for cand, hour, metric, n, total in counts:
        row = rows[(cand, _utc(hour))]
        if metric == agg.PREDICTIONS:
            row["predictions"] = int(n)
        else:
            row["errors"] = float(total or 0)
    merged: dict[tuple[str, datetime], LatencyHistogram] = {}
    for cand, hour, data in sketches:
        key = (cand, _utc(hour))
        one = sketch.decode(data)
        merged[key] = merged[key] + one if key in merged else one
    out = []
    for (cand, hour), row in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        n = row.get("predictions", 0)
        histogram = merged.get((cand, hour))
        q = ([None] * len(QUANTILES) if histogram is None or histogram.count == 0
             else [float(v) for v in histogram.quantile(np.array(QUANTILES))])
        out.append({"candidate": cand, "hour": hour, "predictions": n,
                    "requests_per_s": _rate(n, _served_s(hour, first, newest)),
                    "error_rate": row.get("errors", 0.0) / n if n else None,
                    "latency_p50_ms": q[0], "latency_p95_ms": q[1], "latency_p99_ms": q[2]})
    return out


def _served_s(hour: datetime, first: datetime | None, newest: datetime | None) -> float:
    """Seconds of the hour from the first to the newest stored prediction."""
    start = max(hour, _utc(first)) if first is not None else hour
    end = min(hour + HOUR, _utc(newest)) if newest is not None else hour + HOUR
    return (end - start).total_seconds()


def recent(db: Database, minutes: int = LEDGER_MINUTES,
           candidate: str | None = None) -> list[dict[str, Any]]:
    """Per candidate over the ledger's last ``minutes`` minutes: requests, requests per second
    (from the candidate's first request when it has none before the window), error rate and
    latency percentiles, as the guardrails' rolling window sees them (the rows that carry a
    latency: arms' requests, not shadows' or forced ones). The window ends at the ledger's newest
    row whichever candidate is asked for, so a candidate's figures do not change with the filter."""
    t = ServedPrediction
    where = [] if candidate is None else [t.candidate == candidate]
    with db.reading() as s:
        last = s.scalar(select(func.max(t.created_at)))
        if last is None:
            return []
        start = last - timedelta(minutes=minutes)
        rows = s.execute(select(t.candidate, t.latency_ms, t.error, t.created_at)
                         .where(t.created_at > start, *where)).all()
        older = {c for c in {r[0] for r in rows} if s.scalar(
            select(t.prediction_id).where(t.candidate == c, t.created_at <= start).limit(1))}
    by_cand: dict[str, list[tuple[float | None, bool | None, datetime]]] = defaultdict(list)
    for cand, latency, error, at in rows:
        by_cand[cand].append((latency, error, at))
    out = []
    for cand, items in sorted(by_cand.items()):
        latencies = np.array([lat for lat, _, _ in items if lat is not None], dtype=float)
        q = (np.quantile(latencies, QUANTILES).tolist() if latencies.size
             else [None] * len(QUANTILES))
        began = start if cand in older else min(at for _, _, at in items)
        checked = [e for _, e, _ in items if e is not None]
        out.append({"candidate": cand, "requests": len(items),
                    "requests_per_s": _rate(len(items), (last - began).total_seconds()),
                    "error_rate": sum(checked) / len(checked) if checked else None,
                    "latency_p50_ms": q[0], "latency_p95_ms": q[1], "latency_p99_ms": q[2],
                    "until": _utc(last)})
    return out


def guardrail_events(db: Database) -> list[dict[str, Any]]:
    """Experiments with a status reason (a guardrail, a kill, an operator's pause) and every
    paused arm, newest first, each dated when it happened where the store keeps that time: a
    stop's ``stopped_at``, an arm pause's new split (``allocation.since``). A kill or a pause
    keeps no time, so it is undated rather than dated with the experiment's start."""
    with db.reading() as s:
        found = s.scalars(select(Experiment).order_by(Experiment.id.desc())).all()
    out = []
    for e in found:
        paused = [arm for arm in e.arms or [] if arm.get("paused")]
        split_at = _since(e.allocation)
        if e.status_reason:
            at = (_utc(e.stopped_at) if e.status == "stopped" and e.stopped_at
                  else split_at if e.status == "running" and paused else None)
            out.append({"experiment": e.name, "experiment_id": e.id, "status": e.status,
                        "arm": None, "reason": e.status_reason, "at": at})
        for arm in paused:
            out.append({"experiment": e.name, "experiment_id": e.id, "status": "arm paused",
                        "arm": arm.get("name"), "reason": arm["paused"], "at": split_at})
    return out


def _since(allocation: dict[str, Any] | None) -> datetime | None:
    """When the experiment's current split began (set by every arm pause or resume)."""
    since = (allocation or {}).get("since")
    try:
        return _utc(datetime.fromisoformat(since)) if isinstance(since, str) else None
    except ValueError:
        return None


def pipeline_health(db: Database, expected: Sequence[str] = ()) -> dict[str, Any]:
    """The outbox backlog and its oldest event's age, and each loop's heartbeats and verdict
    (`expected`: the parts the deployment runs, judged as /readyz judges them)."""
    with db.reading() as s:
        beats = s.scalars(select(ComponentHeartbeat).order_by(
            ComponentHeartbeat.component, ComponentHeartbeat.instance)).all()
        now = datetime.now(UTC)
        rows = [{"component": b.component, "instance": b.instance,
                 "beat_age_s": (now - _utc(b.beat_at)).total_seconds(), "lag_s": b.lag_s,
                 "failing": b.failing, "restarts": b.restarts, "last_error": b.last_error}
                for b in beats]
    return {"outbox_pending": pending_count(db), "outbox_lag_s": outbox_lag_s(db),
            "checks": component_checks(db, expected=expected), "heartbeats": rows}


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
