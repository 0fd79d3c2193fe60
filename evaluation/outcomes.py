"""The worker's part for OutcomeRecorded events: store each outcome once, join it to the arm and
unit it belongs to, and add it to that unit's combined value, exactly once, in any order.

An outcome tied to a prediction counts in the prediction's arm, for the prediction's unit; one
tied to a unit counts in the arm the unit was first served in (``experiment_units``). Until
that prediction or unit is known the outcome waits in ``outcomes`` with ``counted_at`` null,
for days if need be. Every batch joins the waiting outcomes whose prediction or unit is now
known (one query each), so neither order of arrival matters, and an outcome a concurrent worker
missed (its prediction committed by another worker meanwhile) counts at the next batch.

Counting claims the rows first: ``UPDATE ... SET counted_at WHERE counted_at IS NULL RETURNING``
runs in the batch's transaction, so of two workers that see the same waiting outcome only the
one whose update returns it adds it to ``outcome_unit_values``; the other's update waits for the
first to commit and then finds ``counted_at`` set.

``outcome_unit_values`` keeps count, sum, max and the first value (by when it happened, then by
outcome id) per experiment, arm, metric and unit, so every combine rule (first, sum, mean, max)
reads from the same row, and a changed definition never needs a recount.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session

from core import events
from core.errors import AbvocError
from core.outcome_metrics import check_after_creation, check_value
from core.store.db import utcnow
from core.store.models import (
    Experiment,
    ExperimentMetric,
    ExperimentUnit,
    Outcome,
    OutcomeUnitValue,
    Prediction,
)
from core.store.upsert import dialect_insert, in_values, insert_rows
from core.times import as_utc, utc_iso
from evaluation.event_times import event_time

# Waiting outcomes joined per batch at most; more wait for the next batch.
JOIN_LIMIT = 10_000
_UNIT_KEYS = ("experiment_id", "arm", "metric", "unit_id")


def waiting(session: Session, experiment_id: int) -> dict[str, dict[str, Any]]:
    """Per metric, the experiment's outcomes still waiting for their prediction or unit, and
    when the oldest of them happened: a unit or prediction id the service never served (a
    typo, another environment's ids) waits for good, and a sender learns it only from here."""
    o = Outcome.__table__.c
    rows = session.execute(
        select(o.metric, func.count(), func.min(o.observed_at))
        .where(o.counted_at.is_(None), o.experiment_id == experiment_id).group_by(o.metric))
    return {metric: {"outcomes": n, "oldest_observed_at": utc_iso(oldest)}
            for metric, n, oldest in rows}


NONE_WAITING = {"outcomes": 0, "oldest_observed_at": None}


def _outcome_row(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "outcome_id": e["outcome_id"],
        "event_id": e["event_id"],
        "experiment_id": e["experiment_id"],
        "metric": e["metric"],
        "value": float(e["value"]),
        "observed_at": event_time(e, "observed_at"),
        "prediction_id": e.get("prediction_id"),
        "unit_id": e.get("unit_id"),
        "arm": None,
        "counted_at": None,
    }


def _joinable(session: Session) -> list[tuple[Any, ...]]:
    """(outcome_id, experiment, metric, value, observed_at, arm or None, unit) of waiting
    outcomes whose prediction or unit is known; arm None marks one that can never count (a
    shadow)."""
    by_prediction, by_unit = _waiting_joins()
    out = []
    for oid, metric, value, at, exp, p_exp, arm, shadow, unit, pid in session.execute(
            by_prediction):
        counts = not shadow and bool(arm) and p_exp == exp
        out.append((oid, exp, metric, value, at, arm if counts else None,
                    unit or f"prediction:{pid}"))
    seen: set[str] = set()
    for row in session.execute(by_unit):  # a unit seen in several slices: its first sighting
        if row[0] not in seen:
            seen.add(row[0])
            out.append(tuple(row))
    return out


@cache
def _waiting_joins() -> tuple[Select, Select]:
    """The two queries of :func:`_joinable`, built once (every batch runs them): waiting
    outcomes joined to their prediction, and those without one joined to their unit."""
    o, p, u = Outcome.__table__.c, Prediction.__table__.c, ExperimentUnit.__table__.c
    waiting = o.counted_at.is_(None)
    by_prediction = (
        select(o.outcome_id, o.metric, o.value, o.observed_at, o.experiment_id,
               p.experiment_id, p.arm, p.shadow, p.unit_id, p.prediction_id)
        .join_from(Outcome.__table__, Prediction.__table__, p.prediction_id == o.prediction_id)
        .where(waiting).order_by(o.outcome_id).limit(JOIN_LIMIT))
    by_unit = (
        select(o.outcome_id, o.experiment_id, o.metric, o.value, o.observed_at, u.arm,
               o.unit_id)
        .join_from(Outcome.__table__, ExperimentUnit.__table__,
                   and_(u.experiment_id == o.experiment_id, u.unit_id == o.unit_id))
        .where(waiting, o.prediction_id.is_(None))
        .order_by(o.outcome_id, u.first_seen, u.arm).limit(JOIN_LIMIT))
    return by_prediction, by_unit


def _claim(session: Session, joinable: list[tuple[Any, ...]]) -> set[str]:
    """Mark the outcomes counted; the ids this transaction claimed (no other worker did)."""
    t = Outcome.__table__
    ids = sorted(row[0] for row in joinable)
    claimed = {r[0] for r in session.execute(
        update(t).where(in_values(session, t.c.outcome_id, ids), t.c.counted_at.is_(None))
        .values(counted_at=utcnow()).returning(t.c.outcome_id))}
    placed = [{"k_id": oid, "k_arm": arm, "k_unit": unit}
              for oid, _, _, _, _, arm, unit in sorted(joinable) if oid in claimed]
    if placed:
        session.connection().execute(
            update(t).where(t.c.outcome_id == bindparam("k_id"))
            .values(arm=bindparam("k_arm"), unit_id=bindparam("k_unit")), placed)
    return claimed


def _unit_rows(joinable: list[tuple[Any, ...]], claimed: set[str]) -> list[dict[str, Any]]:
    rows: dict[tuple, dict[str, Any]] = {}
    for oid, exp, metric, value, at, arm, unit in sorted(joinable):
        if oid not in claimed or arm is None:
            continue
        key = (exp, arm, metric, unit)
        row = rows.get(key)
        if row is None:
            rows[key] = dict(zip(_UNIT_KEYS, key, strict=True), n=1, total=value, maximum=value,
                             first_value=value, first_at=at, first_id=oid)
            continue
        row["n"] += 1
        row["total"] = math.fsum((row["total"], value))
        row["maximum"] = max(row["maximum"], value)
        if (at, oid) < (row["first_at"], row["first_id"]):
            row.update(first_value=value, first_at=at, first_id=oid)
    return [rows[k] for k in sorted(rows)]


def _add_unit_values(session: Session, rows: list[dict[str, Any]]) -> None:
    """Add the rows onto the stored unit values: counts and sums add, max and first merge."""
    if not rows:
        return
    t = OutcomeUnitValue.__table__
    insert = dialect_insert(session, t)
    new = insert.excluded
    earlier = or_(new.first_at < t.c.first_at,
                  and_(new.first_at == t.c.first_at, new.first_id < t.c.first_id))
    stmt = insert.on_conflict_do_update(index_elements=list(_UNIT_KEYS), set_={
        "n": t.c.n + new.n,
        "total": t.c.total + new.total,
        "maximum": case((new.maximum > t.c.maximum, new.maximum), else_=t.c.maximum),
        "first_value": case((earlier, new.first_value), else_=t.c.first_value),
        "first_at": case((earlier, new.first_at), else_=t.c.first_at),
        "first_id": case((earlier, new.first_id), else_=t.c.first_id),
    })
    session.execute(stmt, rows)


def check_outcomes(session: Session, outcomes: list[dict[str, Any]]) -> None:
    """Refuse (AbvocError, so the stream parks the event alone) an outcome the API would have
    refused: of a metric its experiment does not define (or of no experiment), dated before
    its experiment was created, or a value its metric's kind does not take (the kind is fixed
    once outcomes of it exist, see evaluation.metric_definitions). Anyone who can write to the
    outcomes topic reaches here without the API's checks; an undefined metric's value went
    unchecked, and once the metric was defined a value of 1e300 failed its results (a 500)."""
    if not outcomes:
        return
    ids = sorted({e["experiment_id"] for e in outcomes})
    m, x = ExperimentMetric.__table__.c, Experiment.__table__.c
    # Read shared (PostgreSQL), as the API's intake does: a kind change waits for this batch.
    kinds = {(exp, name): kind for exp, name, kind in session.execute(
        select(m.experiment_id, m.name, m.kind)
        .where(in_values(session, m.experiment_id, ids)).with_for_update(read=True))}
    created = {exp: as_utc(at) for exp, at in session.execute(
        select(x.id, x.created_at).where(in_values(session, x.id, ids)))}
    for e in outcomes:
        try:
            check_after_creation(e["experiment_id"], created.get(e["experiment_id"]),
                                 event_time(e, "observed_at"))
            kind = kinds.get((e["experiment_id"], e["metric"]))
            if kind is None:
                raise AbvocError(f"metric {e['metric']!r} is not defined on experiment "
                                 f"{e['experiment_id']}" if e["experiment_id"] in created
                                 else f"experiment {e['experiment_id']} does not exist")
            check_value(e["metric"], kind, e["value"])
        except AbvocError as exc:
            raise AbvocError(f"{e['event_type']} {e['event_id']!r}: {exc.message}") from None


def apply_outcomes(session: Session, batch: list[dict[str, Any]]) -> None:
    """Store the batch's outcomes, once checked (:func:`check_outcomes`), and count every
    waiting outcome that can now be joined, in the caller's transaction (after the batch's
    predictions and units were stored)."""
    outcomes = [e for e in batch if e["event_type"] == events.OUTCOME_RECORDED]
    check_outcomes(session, outcomes)
    rows = {e["outcome_id"]: _outcome_row(e) for e in outcomes}
    if rows:
        insert_rows(session, Outcome.__table__, [rows[k] for k in sorted(rows)],
                    ["outcome_id"])
    joinable = _joinable(session)
    if not joinable:
        return
    claimed = _claim(session, joinable)
    _add_unit_values(session, _unit_rows(joinable, claimed))
