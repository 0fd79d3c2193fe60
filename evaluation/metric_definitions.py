"""Outcome metric definitions per experiment: the plain functions behind
``POST/GET /v1/experiments/{id}/metrics`` and ``abvoc metrics define/list``.

A definition may be changed at any time: the worker keeps each unit's count, sum, max and first
value of every metric (see :mod:`evaluation.outcomes`), so a new combine rule, direction,
guardrail, primary flag or ``missing`` rule reads the same stored outcomes again, and nothing
is counted twice. Only the kind is fixed once outcomes of the metric were accepted (each was
checked against it, and some may still be on their way to the worker), and a metric that a
ratio divides cannot become a ratio itself.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.builtin_metrics import ALL_METRICS
from core.errors import AbvocError, Conflict, NotFound
from core.outcome_metrics import RATIO, SKIP_MISSING, check_definition
from core.store.db import Database, utcnow
from core.store.models import (
    Experiment,
    ExperimentMetric,
    Outcome,
    OutcomeRequest,
    OutcomeUnitValue,
)
from core.times import utc_iso
from evaluation.outcomes import NONE_WAITING, waiting

# The names the results already use for their built-in metrics (a second metric of one name
# breaks the results' table), read from where those metrics are defined; and the guardrail that
# shares the results' vocabulary.
BUILT_IN = frozenset({m.name for m in ALL_METRICS} | {"latency_p99_ms"})
MAX_METRICS = 50
UNIT_ID_LIMIT = 200  # as an outcome's unit_id (feedback.outcomes.LIMITS)


def view(row: ExperimentMetric) -> dict[str, Any]:
    """A definition as the API shows it."""
    return {"name": row.name, "kind": row.kind, "direction": row.direction,
            "combine": row.combine, "numerator": row.numerator, "denominator": row.denominator,
            "guardrail": row.guardrail, "primary": bool(row.is_primary),
            "missing": row.missing or SKIP_MISSING,
            "created_at": utc_iso(row.created_at), "updated_at": utc_iso(row.updated_at)}


def load(session: Session, experiment_id: int, *, lock: bool = False) -> list[ExperimentMetric]:
    """An experiment's definitions by name (`lock`: for update, on PostgreSQL)."""
    query = select(ExperimentMetric).where(
        ExperimentMetric.experiment_id == experiment_id).order_by(ExperimentMetric.name)
    return list(session.scalars(query.with_for_update() if lock else query))


def list_metrics(db: Database, experiment_id: int) -> list[dict[str, Any]]:
    with db.reading() as s:
        _experiment(s, experiment_id)
        held = waiting(s, experiment_id)
        return [{**view(r), "waiting": held.get(r.name, NONE_WAITING)}
                for r in load(s, experiment_id)]


def unit_outcomes(db: Database, experiment_id: int, unit_id: str) -> dict[str, Any]:
    """What the worker has counted of one unit's outcomes, per metric: how many and in which
    arm; so a sender (the game league) can wait for its own units rather than for a total
    that other senders' units reach as well. Empty until the first one is counted."""
    if not unit_id.strip() or len(unit_id) > UNIT_ID_LIMIT:  # blank: no unit's id
        raise AbvocError(f"give 'unit_id': the unit's id, 1 to {UNIT_ID_LIMIT} characters, "
                         "not blank")
    with db.reading() as s:
        _experiment(s, experiment_id)
        rows = s.execute(select(OutcomeUnitValue.metric, OutcomeUnitValue.arm,
                                OutcomeUnitValue.n)
                         .where(OutcomeUnitValue.experiment_id == experiment_id,
                                OutcomeUnitValue.unit_id == unit_id)
                         .order_by(OutcomeUnitValue.metric, OutcomeUnitValue.arm))
        counted: dict[str, dict[str, int]] = {}
        for metric, arm, n in rows:
            counted.setdefault(metric, {})[arm] = int(n)
    return {"experiment_id": experiment_id, "unit_id": unit_id,
            "outcomes": {m: {"arms": arms, "n": sum(arms.values())}
                         for m, arms in counted.items()}}


def _experiment(session: Session, experiment_id: int) -> Experiment:
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise NotFound(f"experiment {experiment_id} does not exist")
    return experiment


def _check_against(session: Session, experiment_id: int, spec: dict[str, Any],
                   others: dict[str, ExperimentMetric], old: ExperimentMetric | None) -> None:
    name = spec["name"]
    if name in BUILT_IN:
        raise AbvocError(f"{name!r} is a built-in metric of the results; choose another name "
                         f"(built-in: {sorted(BUILT_IN)})")
    if old is None and len(others) >= MAX_METRICS:
        raise AbvocError(f"an experiment holds at most {MAX_METRICS} metrics")
    if spec["kind"] == RATIO:
        used = [o.name for o in others.values() if name in (o.numerator, o.denominator)]
        if used:
            raise Conflict(f"{name!r} is a part of the ratio {used[0]!r}, so it cannot become "
                           "a ratio itself")
        for part in ("numerator", "denominator"):
            other = others.get(spec[part])
            if other is None:
                raise AbvocError(f"the {part} {spec[part]!r} is not defined on experiment "
                                 f"{experiment_id}; define it first (kind mean or proportion)")
            if other.kind == RATIO:
                raise AbvocError(f"the {part} {spec[part]!r} is itself a ratio; a ratio "
                                 "divides sums of plain metrics")
    if old is not None and old.kind != spec["kind"] and _has_outcomes(session, experiment_id,
                                                                        name):
        raise Conflict(f"metric {name!r} already has outcomes checked as {old.kind}; its "
                       f"kind cannot become {spec['kind']} (define a new metric instead)")
    primary = next((o.name for o in others.values() if o.is_primary), None)
    if spec["primary"] and primary is not None:
        raise Conflict(f"{primary!r} is already the primary metric; define it again without "
                       "primary first (\"primary\": false; `abvoc metrics define` without "
                       "--primary)")


def _has_outcomes(session: Session, experiment_id: int, name: str) -> bool:
    """Whether outcomes of the metric were accepted: stored by the worker, or accepted by the
    API and still on their way to it (each was checked against the metric's kind)."""
    stored = select(Outcome.outcome_id).where(Outcome.experiment_id == experiment_id,
                                              Outcome.metric == name).limit(1)
    accepted = select(OutcomeRequest.outcome_id).where(
        OutcomeRequest.experiment_id == experiment_id, OutcomeRequest.metric == name).limit(1)
    return session.scalar(stored) is not None or session.scalar(accepted) is not None


def define_metric(db: Database, experiment_id: int, body: Any) -> tuple[dict[str, Any], bool]:
    """Create or change one definition; returns it and whether it is new."""
    spec = check_definition(body)
    try:
        with db.session() as s:
            _experiment(s, experiment_id)
            # Locked on PostgreSQL (an outcome being accepted holds its metric's row shared,
            # feedback.outcomes), so a kind change sees every outcome accepted before it.
            rows = {r.name: r for r in load(s, experiment_id, lock=True)}
            old = rows.pop(spec["name"], None)
            _check_against(s, experiment_id, spec, rows, old)
            now = utcnow()
            row = old or ExperimentMetric(experiment_id=experiment_id, name=spec["name"],
                                          created_at=now)
            row.kind, row.direction, row.combine = spec["kind"], spec["direction"], spec["combine"]
            row.numerator, row.denominator = spec["numerator"], spec["denominator"]
            row.guardrail, row.is_primary, row.updated_at = spec["guardrail"], spec["primary"], now
            row.missing = spec["missing"]
            if old is None:
                s.add(row)
            s.flush()
            return view(row), old is None
    except IntegrityError as exc:
        # Two definitions raced: the same new name, or two primaries at once.
        raise Conflict("another definition of this experiment's metrics was saved at the same "
                       "time; read them and try again") from exc
