"""What the Operations page reads: traffic, latency and errors per candidate and hour from the
online aggregates, the last minutes from the API's served-prediction ledger, the pauses and
kills in force and who made them (arms a guardrail or an admin paused, experiments an admin
paused or killed), the outbox backlog and the loops' heartbeats.

Windows end at the newest data, not at the clock: a store replayed or seeded later still shows
its last hours. A rate is requests over the seconds of its window that the service was serving:
an hour (or the ledger's minutes) the first requests fall in, or the newest one, cut at the
first and the newest data, so a service up for three minutes shows the rate it served at, not
that rate spread over an hour.

A candidate is named as ``name vX`` wherever two versions of its name served (as the
Offline-vs-online page names them, :func:`evaluation.candidate_facts.shown_names`), so the rows
of two versions never merge into one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
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
from core.times import as_utc
from evaluation import aggregation as agg
from evaluation import sketch
from evaluation.candidate_facts import shown_names, variant_version
from evaluation.stats import LatencyHistogram
from serving.experiment_spec import BY_ADMIN

HOUR = timedelta(hours=1)
MIN_SPAN_S = 1.0  # a rate over less than this is no rate
QUANTILES = (0.5, 0.95, 0.99)
LEDGER_MINUTES = 15


Ref = tuple[str, str | None]
Variant = tuple[int, str, str, bool]  # the aggregates' experiment, arm, candidate, shadow


@dataclass(frozen=True)
class Names:
    """How the pages name what served: each aggregate variant's and each ledger (candidate,
    version)'s shown name. A version the store cannot tell (traffic outside any experiment, a
    ledger row from before versions were kept) is the name's only known version if it has one."""

    variants: dict[Variant, str]
    refs: dict[Ref, str]

    def of_ledger(self, candidate: str, version: str | None) -> str:
        return self.refs.get((candidate, version), candidate)

    def of_prediction(self, p: dict[str, Any]) -> str:
        """One prediction's candidate as shown (``candidate``, ``experiment_id``, ``arm``,
        ``shadow``, and ``version`` where the ledger knows it): its variant's name, as the
        aggregates key it. A prediction without a candidate (an outcome reported by unit) has
        none."""
        if p.get("candidate") is None:
            return "–"
        if p.get("version") is not None and (p["candidate"], p["version"]) in self.refs:
            return self.refs[(p["candidate"], p["version"])]
        key = (p.get("experiment_id") or 0, "" if p.get("shadow") else (p.get("arm") or ""),
               p["candidate"], bool(p.get("shadow")))
        return self.variants.get(key) or self.of_ledger(p["candidate"], p.get("version"))

    def versioned(self, text: str) -> list[Variant]:
        """The variants whose shown name carries a version (``name vX``) and contains ``text``
        in any case: a search for what the pages show finds the rows the name alone cannot."""
        folded = text.lower()
        return [key for key, shown in self.variants.items()
                if shown != key[2] and folded in shown.lower()]

    def base(self, shown: str) -> str | None:
        """The candidate name a shown name stands for (None: nothing served under it)."""
        return next((ref[0] for ref, name in self.refs.items() if name == shown), None)


def names(db: Database) -> Names:
    """The shown names of every candidate version in the aggregates and the ledger's window."""
    t, sp = OnlineAggregate, ServedPrediction
    with db.reading() as s:
        keys = [tuple(k) for k in s.execute(
            select(t.experiment_id, t.arm, t.candidate, t.shadow)
            .where(t.metric == agg.PREDICTIONS).distinct())]
        found = s.scalars(select(Experiment).where(
            Experiment.id.in_({k[0] for k in keys}))).all()
        last = s.scalar(select(func.max(sp.created_at)))
        ledger = set() if last is None else {tuple(r) for r in s.execute(
            select(sp.candidate, sp.version).where(
                sp.created_at > last - timedelta(minutes=LEDGER_MINUTES)).distinct())}
    exps = {e.id: e for e in found}
    raw: dict[Variant, Ref] = {
        (e, arm, c, bool(sh)): (c, variant_version(exps[e], arm, c, bool(sh)) if e in exps
                                else None) for e, arm, c, sh in keys}
    refs = set(raw.values()) | ledger
    known: dict[str, set[str]] = defaultdict(set)
    for c, v in refs:
        if v is not None:
            known[c].add(v)

    def resolve(ref: Ref) -> Ref:
        one = known[ref[0]]
        return (ref[0], next(iter(one))) if ref[1] is None and len(one) == 1 else ref

    shown = shown_names({"candidate": c, "version": v}
                        for c, v in sorted({resolve(r) for r in refs},
                                           key=lambda r: (r[0], r[1] or "")))
    return Names({k: shown[resolve(r)] for k, r in raw.items()},
                 {r: shown[resolve(r)] for r in refs})


def candidates(db: Database) -> list[str]:
    """The candidates with online traffic, by their shown names."""
    return sorted(set(names(db).variants.values()))


def _rate(n: int, seconds: float) -> float | None:
    return n / seconds if seconds >= MIN_SPAN_S else None


def hourly(db: Database, hours: int | None = 24,
           candidate: str | None = None) -> list[dict[str, Any]]:
    """Per candidate (by its shown name, see :class:`Names`) and hour (the last ``hours`` hours
    with data; None: all): requests per second (over the part of the hour between the store's
    first and newest prediction, of any candidate), error rate, latency p50/p95/p99 (from the
    merged latency sketches)."""
    t = OnlineAggregate
    named = names(db)
    where = [] if candidate is None else [t.candidate == named.base(candidate)]
    variant = (t.experiment_id, t.arm, t.candidate, t.shadow)
    with db.reading() as s:
        last = s.scalar(select(func.max(t.hour)).where(*where))
        if last is None:
            return []
        if hours is not None:
            where.append(t.hour > last - HOUR * hours)
        counts = s.execute(select(*variant, t.hour, t.metric, func.sum(t.n), func.sum(t.sum))
                           .where(t.metric.in_((agg.PREDICTIONS, agg.ERRORS)), *where)
                           .group_by(*variant, t.hour, t.metric)).all()
        sketches = s.execute(select(*variant, t.hour, t.sketch)
                             .where(t.metric == agg.LATENCY, t.sketch.is_not(None), *where)).all()
        first, newest = s.execute(select(func.min(Prediction.created_at),
                                         func.max(Prediction.created_at))).one()

    def shown(e: int, arm: str, c: str, sh: bool) -> str | None:
        name = named.variants.get((e, arm, c, bool(sh)), c)
        return name if candidate is None or name == candidate else None

    rows: dict[tuple[str, datetime], dict[str, Any]] = defaultdict(dict)
    for e, arm, c, sh, hour, metric, n, total in counts:
        if (cand := shown(e, arm, c, sh)) is None:
            continue
        row = rows[(cand, as_utc(hour))]
        key = "predictions" if metric == agg.PREDICTIONS else "errors"
        row[key] = row.get(key, 0) + (int(n) if key == "predictions" else float(total or 0))
    merged: dict[tuple[str, datetime], LatencyHistogram] = {}
    for e, arm, c, sh, hour, data in sketches:
        if (cand := shown(e, arm, c, sh)) is None:
            continue
        key = (cand, as_utc(hour))
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
    start = max(hour, as_utc(first)) if first is not None else hour
    end = min(hour + HOUR, as_utc(newest)) if newest is not None else hour + HOUR
    return (end - start).total_seconds()


def recent(db: Database, minutes: int = LEDGER_MINUTES,
           candidate: str | None = None) -> list[dict[str, Any]]:
    """Per candidate (by its shown name) over the ledger's last ``minutes`` minutes: requests,
    requests per second (over the seconds from the window's start, or from the candidate's first
    request when it has none before the window, to the ledger's newest row), error rate and
    latency percentiles, as the guardrails' rolling window sees them (the rows that carry a
    latency: arms' requests and those outside experiments, not shadows' or forced ones,
    ``watched`` counts them). The window ends at the ledger's newest row whichever candidate is
    asked for, so a candidate's figures do not change with the filter."""
    t = ServedPrediction
    named = names(db)
    where = [] if candidate is None else [t.candidate == named.base(candidate)]
    with db.reading() as s:
        last = s.scalar(select(func.max(t.created_at)))
        if last is None:
            return []
        start = last - timedelta(minutes=minutes)
        rows = s.execute(select(t.candidate, t.version, t.latency_ms, t.error, t.created_at)
                         .where(t.created_at > start, *where)).all()
        # Served before the window, by the shown name (two versions of a name are two).
        older = {named.of_ledger(c, v) for c, v in {(r[0], r[1]) for r in rows} if s.scalar(
            select(t.prediction_id).where(t.candidate == c, t.created_at <= start,
                                          t.version.is_(None) if v is None else t.version == v)
            .limit(1))}
    by_cand: dict[str, list[tuple[float | None, bool | None, datetime]]] = defaultdict(list)
    for cand, version, latency, error, at in rows:
        shown = named.of_ledger(cand, version)
        if candidate is None or shown == candidate:
            by_cand[shown].append((latency, error, at))
    out = []
    for cand, items in sorted(by_cand.items()):
        latencies = np.array([lat for lat, _, _ in items if lat is not None], dtype=float)
        q = (np.quantile(latencies, QUANTILES).tolist() if latencies.size
             else [None] * len(QUANTILES))
        began = start if cand in older else min(at for _, _, at in items)
        checked = [e for _, e, _ in items if e is not None]
        out.append({"candidate": cand, "requests": len(items), "watched": int(latencies.size),
                    "requests_per_s": _rate(len(items), (last - began).total_seconds()),
                    "error_rate": sum(checked) / len(checked) if checked else None,
                    "latency_p50_ms": q[0], "latency_p95_ms": q[1], "latency_p99_ms": q[2],
                    "until": as_utc(last)})
    return out


def guardrail_events(db: Database) -> list[dict[str, Any]]:
    """Each pause or kill in force, newest experiment first, with who did it (``by``): an
    experiment paused or killed (always an admin: guardrails pause arms only), and every paused
    arm (a guardrail or an admin, as its ``paused_by`` says; None for a pause from before it
    was kept). A running or stopped experiment's status reason only restates its paused arms,
    listed once, as theirs. Each is dated when it happened where the store keeps that time:
    the status's ``status_since``, an arm pause's new split (``allocation.since``); a kill or a
    pause from before revision 0025 kept no time: undated rather than dated with the start."""
    with db.reading() as s:
        found = s.scalars(select(Experiment).order_by(Experiment.id.desc())).all()
    out = []
    for e in found:
        split_at = _since(e.allocation)
        if e.status in ("paused", "killed") and e.status_reason:
            out.append({"experiment": e.name, "experiment_id": e.id, "status": e.status,
                        "arm": None, "by": BY_ADMIN, "reason": e.status_reason,
                        "at": as_utc(e.status_since) if e.status_since else None})
        for arm in e.arms or []:
            if arm.get("paused"):
                out.append({"experiment": e.name, "experiment_id": e.id, "status": "arm paused",
                            "arm": arm.get("name"), "by": arm.get("paused_by"),
                            "reason": arm["paused"], "at": split_at})
    return out


def _since(allocation: dict[str, Any] | None) -> datetime | None:
    """When the experiment's current split began (set by every arm pause or resume)."""
    since = (allocation or {}).get("since")
    try:
        return as_utc(datetime.fromisoformat(since)) if isinstance(since, str) else None
    except ValueError:
        return None


def pipeline_health(db: Database, expected: Sequence[str] = (),
                    prefix: str | None = None) -> dict[str, Any]:
    """The outbox backlog and its oldest event's age, and each loop's heartbeats and verdict
    (`expected`: the parts the deployment runs, `prefix` its topic prefix, judged as /readyz
    judges them). An instance that stopped cleanly has no heartbeat row; the verdict says when
    a part the deployment runs has stopped."""
    with db.reading() as s:
        beats = s.scalars(select(ComponentHeartbeat).order_by(
            ComponentHeartbeat.component, ComponentHeartbeat.instance)).all()
        now = datetime.now(UTC)
        rows = [{"component": b.component, "instance": b.instance,
                 "beat_age_s": (now - as_utc(b.beat_at)).total_seconds(), "lag_s": b.lag_s,
                 "failing": b.failing, "restarts": b.restarts, "last_error": b.last_error}
                for b in beats]
    return {"outbox_pending": pending_count(db), "outbox_lag_s": outbox_lag_s(db),
            "checks": component_checks(db, expected=expected, prefix=prefix),
            "heartbeats": rows}

