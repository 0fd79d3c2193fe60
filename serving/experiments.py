"""Experiments: arms with weights, shadows, a canary ramp and guardrails, stored as data.

Life cycle: draft → running ⇄ paused → stopped; `kill` sends every unit to control at once and
`resume` undoes it. Only one experiment owns a traffic scope while it is running, paused or
killed. Weight changes (a canary step, a pause of one arm) go through `reallocate`, so only the
units that must move change arm.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import AbvocError, Conflict, NotFound
from core.store.db import Database, utcnow
from core.store.models import Candidate, Experiment, ServedPrediction
from serving.assignment import Allocation, allocate, reallocate

UNITS = ("user", "session", "request")
ACTIVE = ("running", "paused", "killed")
METRICS = ("correction_rate", "error_rate", "latency_p99_ms", "absolute_error")
# Each guardrail's largest sensible limit: an hour of latency, rates as shares.
GUARDRAILS = {"p99_latency_ms": 3_600_000, "error_rate": 1, "correction_rate": 1}
MAX_WEIGHT = 1_000_000
MAX_ARMS = 20
SHADOW_PREFIX = "shadow:"


def _fail(message: str) -> AbvocError:
    return AbvocError(message, status=400)


def _check_arms(arms: Any) -> list[dict[str, Any]]:
    if not isinstance(arms, list) or not 2 <= len(arms) <= MAX_ARMS:
        raise _fail(f"'arms' must be a list of at least two arms (one control, one treatment) "
                    f"and at most {MAX_ARMS}")
    out, names = [], set()
    for i, arm in enumerate(arms):
        if not isinstance(arm, dict):
            raise _fail(f"arms[{i}] must be an object with name, candidate and weight")
        name, candidate, weight = arm.get("name"), arm.get("candidate"), arm.get("weight")
        if not isinstance(name, str) or not name or len(name) > 100:
            raise _fail(f"arms[{i}].name must be a non-empty string of at most 100 characters")
        if name in names:
            raise _fail(f"arm name {name!r} is used twice")
        names.add(name)
        if not isinstance(candidate, str) or not candidate or len(candidate) > 200:
            raise _fail(f"arms[{i}].candidate must name a registered candidate")
        if name.startswith(SHADOW_PREFIX):
            raise _fail(f"arms[{i}].name must not start with {SHADOW_PREFIX!r}: results name "
                        "shadow candidates that way")
        # Compared as Python numbers first: float() of a huge int raises, and weights near the
        # float limit would sum to infinity and store a different split than was asked for.
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
            0 <= weight <= MAX_WEIGHT
        ):
            raise _fail(f"arms[{i}].weight must be a number from 0 to {MAX_WEIGHT:,}")
        control = arm.get("control", False)
        if not isinstance(control, bool):
            raise _fail(f"arms[{i}].control must be true or false")
        out.append({"name": name, "candidate": candidate,
                    "version": _check_version(arm.get("version"), f"arms[{i}]"),
                    "weight": float(weight), "control": control, "paused": None})
    if sum(a["control"] for a in out) != 1:
        raise _fail("exactly one arm must have \"control\": true")
    if sum(a["weight"] for a in out) <= 0:
        raise _fail("arm weights must not all be zero")
    return out


def _check_version(version: Any, where: str) -> str | None:
    """An arm's or shadow's candidate version; None: the newest at creation."""
    if version is None:
        return None
    if not isinstance(version, str) or not version or len(version) > 50:
        raise _fail(f"{where}.version must be a registered version of its candidate (a string)")
    return version


def _pin_versions(s: Any, refs: list[dict[str, Any]]) -> None:
    """Give each arm and shadow the version it runs for the experiment's life: the one named,
    else the newest active version now. Registering a newer version later changes nothing here."""
    for ref in refs:
        query = select(Candidate.version, Candidate.retired_at).where(
            Candidate.name == ref["candidate"])
        if ref.get("version") is not None:
            row = s.execute(query.where(Candidate.version == ref["version"])).first()
            if row is None or row.retired_at is not None:
                state = "is retired" if row is not None else "is not registered"
                raise _fail(f"candidate {ref['candidate']!r} version {ref['version']!r} {state}; "
                            "see `abvoc candidates list`")
            continue
        row = s.execute(query.where(Candidate.retired_at.is_(None))
                        .order_by(Candidate.id.desc()).limit(1)).first()
        if row is None:
            raise _fail(f"candidate {ref['candidate']!r} has no active version; register one")
        ref["version"] = row.version


def _check_canary(canary: Any, arms: list[dict[str, Any]]) -> dict[str, Any]:
    if not canary:
        return {}
    if not isinstance(canary, dict):
        raise _fail("'canary' must be an object with treatment and steps")
    treatment = canary.get("treatment")
    arm = next((a for a in arms if a["name"] == treatment), None)
    if arm is None or arm["control"]:
        raise _fail("canary.treatment must name a treatment arm (not the control)")
    steps = canary.get("steps")
    if (not isinstance(steps, list) or not steps
            or not all(isinstance(x, int | float) and 0 < x <= 1 for x in steps)
            or any(b <= a for a, b in zip(steps, steps[1:], strict=False))):
        raise _fail("canary.steps must be increasing shares in (0, 1], e.g. [0.01, 0.05, 0.25]")
    others = sum(a["weight"] for a in arms if not a["control"] and a is not arm)
    others_share = others / sum(a["weight"] for a in arms)
    if steps[-1] + others_share > 1:
        raise _fail("canary.steps leave no traffic for the control arm")
    out: dict[str, Any] = {"treatment": treatment, "steps": [float(x) for x in steps], "step": 0}
    for key, limit in (("advance_after_s", 10 * 365 * 86400), ("advance_after_n", 10**12)):
        value = canary.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not 0 < value <= limit):
            raise _fail(f"canary.{key} must be a positive number of at most {limit}")
        out[key] = value
    return out


def _check_guardrails(guardrails: Any) -> dict[str, Any]:
    guardrails = guardrails or {}
    if not isinstance(guardrails, dict):
        raise _fail("'guardrails' must be an object")
    unknown = set(guardrails) - {*GUARDRAILS, "min_samples"}
    if unknown:
        raise _fail(f"unknown guardrails {sorted(unknown)}; use {list(GUARDRAILS)}, min_samples")
    min_samples = guardrails.get("min_samples", 50)
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or not (
        1 <= min_samples <= 10**9
    ):
        raise _fail("guardrails.min_samples must be a whole number from 1 to 10^9")
    out: dict[str, Any] = {"min_samples": min_samples}
    for key, limit in GUARDRAILS.items():
        value = guardrails.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not 0 < value <= limit):
            raise _fail(f"guardrails.{key} must be a number above 0 and at most {limit:,}")
        out[key] = value
    return out


def effective_weights(exp: Experiment | dict[str, Any]) -> list[float]:
    """The weights traffic follows now: configured ones, with the canary's current step, and
    paused arms' traffic handed to control."""
    arms = exp["arms"] if isinstance(exp, dict) else exp.arms
    canary = (exp["canary"] if isinstance(exp, dict) else exp.canary) or {}
    total = sum(a["weight"] for a in arms)
    weights = [a["weight"] / total for a in arms]
    if canary:
        t = next(i for i, a in enumerate(arms) if a["name"] == canary["treatment"])
        weights[t] = canary["steps"][canary["step"]]
    control = next(i for i, a in enumerate(arms) if a["control"])
    for i, arm in enumerate(arms):
        if arm.get("paused"):
            weights[i] = 0.0
    weights[control] = 0.0
    weights[control] = max(0.0, 1.0 - sum(weights))
    return weights


def _view(exp: Experiment) -> dict[str, Any]:
    return {
        "id": exp.id, "name": exp.name, "scope": exp.scope, "status": exp.status,
        "status_reason": exp.status_reason, "unit": exp.unit, "salt": exp.salt,
        "arms": exp.arms, "weights": [round(w, 6) for w in effective_weights(exp)],
        "shadows": exp.shadows, "canary": exp.canary, "guardrails": exp.guardrails,
        "primary_metric": exp.primary_metric,
        "allocation_table": exp.allocation.get("table"),
        "created_at": exp.created_at.isoformat() if exp.created_at else None,
        "started_at": exp.started_at.isoformat() if exp.started_at else None,
        "stopped_at": exp.stopped_at.isoformat() if exp.stopped_at else None,
    }


class Experiments:
    """Create and steer experiments; every change is one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(spec, dict):
            raise _fail("the experiment must be a JSON object")
        unknown = set(spec) - {"name", "scope", "unit", "salt", "arms", "shadows", "canary",
                               "guardrails", "primary_metric"}
        if unknown:
            raise _fail(f"unknown fields {sorted(unknown)}")
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise _fail("'name' must be a non-empty string of at most 100 characters")
        scope = spec.get("scope", "default")
        if not isinstance(scope, str) or not scope or len(scope) > 100:
            raise _fail("'scope' must be a non-empty string")
        unit = spec.get("unit", "user")
        if unit not in UNITS:
            raise _fail(f"'unit' must be one of {list(UNITS)}")
        salt = spec.get("salt") or secrets.token_hex(8)
        if not isinstance(salt, str) or len(salt) > 64:
            raise _fail("'salt' must be a string of at most 64 characters")
        arms = _check_arms(spec.get("arms"))
        shadows = spec.get("shadows") or []
        if not isinstance(shadows, list) or not all(
            isinstance(s, dict) and isinstance(s.get("candidate"), str) for s in shadows
        ):
            raise _fail("'shadows' must be a list of {\"candidate\": name}")
        shadows = [{"candidate": x["candidate"],
                    "version": _check_version(x.get("version"), f"shadows[{i}]")}
                   for i, x in enumerate(shadows)]
        names = [s["candidate"] for s in shadows]
        if len(set(names)) != len(names):
            raise _fail("'shadows' names a candidate twice; list each shadow once")
        canary = _check_canary(spec.get("canary"), arms)
        guardrails = _check_guardrails(spec.get("guardrails"))
        primary = spec.get("primary_metric", "correction_rate")
        if primary not in METRICS:
            raise _fail(f"'primary_metric' must be one of {list(METRICS)}")
        with self.db.session() as s:
            wanted = {a["candidate"] for a in arms} | {x["candidate"] for x in shadows}
            known = set(s.scalars(select(Candidate.name).where(Candidate.name.in_(wanted))))
            if wanted - known:
                raise _fail(f"candidates not registered: {sorted(wanted - known)}; "
                            "see `abvoc candidates list`")
            _pin_versions(s, [*arms, *shadows])
            if s.scalar(select(Experiment.id).where(Experiment.name == name)) is not None:
                raise Conflict(f"an experiment named {name!r} exists already")
            exp = Experiment(
                name=name, scope=scope, status="draft", unit=unit, salt=salt, arms=arms,
                shadows=shadows, canary=canary, guardrails=guardrails, primary_metric=primary,
                status_reason="", created_at=utcnow(),
            )
            exp.allocation = {"table": allocate(effective_weights(exp)).to_json()}
            s.add(exp)
            s.flush()
            return _view(exp)

    def _get(self, s: Session, experiment_id: int, lock: bool = False) -> Experiment:
        query = select(Experiment).where(Experiment.id == experiment_id)
        if lock and self.db.dialect == "postgresql":
            query = query.with_for_update()
        exp = s.scalars(query).first()
        if exp is None:
            raise NotFound(f"experiment {experiment_id} does not exist")
        return exp

    def get(self, experiment_id: int) -> dict[str, Any]:
        with self.db.reading() as s:
            return _view(self._get(s, experiment_id))

    def list(self, status: str | None = None) -> list[dict[str, Any]]:
        with self.db.reading() as s:
            query = select(Experiment).order_by(Experiment.id)
            if status:
                query = query.where(Experiment.status == status)
            return [_view(e) for e in s.scalars(query)]

    def active(self) -> list[dict[str, Any]]:
        """Experiments that own their scope now (running, paused or killed)."""
        with self.db.reading() as s:
            query = select(Experiment).where(Experiment.status.in_(ACTIVE))
            return [_view(e) for e in s.scalars(query)]

    def _transition(self, experiment_id: int, allowed: tuple[str, ...], status: str,
                    reason: str = "") -> dict[str, Any]:
        with self.db.session() as s:
            exp = self._get(s, experiment_id, lock=True)
            if exp.status not in allowed:
                raise Conflict(f"experiment {experiment_id} is {exp.status}; "
                               f"it must be {' or '.join(allowed)} for that")
            if status == "running" and exp.status == "draft":
                owner = s.scalar(select(Experiment.name).where(
                    Experiment.scope == exp.scope, Experiment.status.in_(ACTIVE),
                    Experiment.id != exp.id))
                if owner is not None:
                    raise Conflict(f"scope {exp.scope!r} is owned by running experiment "
                                   f"{owner!r}; stop it first")
                exp.started_at = utcnow()
                if exp.canary:
                    exp.canary = {**exp.canary, "step_started_at": utcnow().isoformat()}
            if status == "stopped":
                exp.stopped_at = utcnow()
            scope = exp.scope
            exp.status = status
            exp.status_reason = reason
            try:
                # The store's partial unique index on an active scope decides a race between
                # two starts the check above could not see (on PostgreSQL, the loser waits for
                # the winner's commit, then fails here).
                s.flush()
            except IntegrityError:
                raise Conflict(f"scope {scope!r} was just taken by another experiment; "
                               "stop it first") from None
            return _view(exp)

    def start(self, experiment_id: int) -> dict[str, Any]:
        return self._transition(experiment_id, ("draft",), "running")

    def pause(self, experiment_id: int, reason: str = "paused by an operator") -> dict[str, Any]:
        return self._transition(experiment_id, ("running",), "paused", reason)

    def resume(self, experiment_id: int) -> dict[str, Any]:
        return self._transition(experiment_id, ("paused", "killed"), "running")

    def kill(self, experiment_id: int, reason: str = "kill switch") -> dict[str, Any]:
        return self._transition(experiment_id, ("running", "paused"), "killed", reason)

    def stop(self, experiment_id: int) -> dict[str, Any]:
        return self._transition(experiment_id, (*ACTIVE, "draft"), "stopped")

    def _set_weights(self, exp: Experiment) -> None:
        old = Allocation.from_json(exp.allocation["table"])
        exp.allocation = {"table": reallocate(old, effective_weights(exp)).to_json()}

    @staticmethod
    def _treatment(exp: Experiment, arms: list[dict[str, Any]], name: str) -> dict[str, Any]:
        """The treatment arm called `name`: 404 when there is none, 400 for the control."""
        arm = next((a for a in arms if a["name"] == name), None)
        if arm is None:
            raise NotFound(f"experiment {exp.id} has no arm {name!r}; its arms are "
                           f"{[a['name'] for a in arms]}")
        if arm["control"]:
            raise _fail(f"{name!r} is the control arm of experiment {exp.id}; only treatment "
                        "arms are paused and resumed")
        return arm

    def pause_arm(self, experiment_id: int, arm_name: str, reason: str) -> dict[str, Any]:
        """Send a treatment's traffic to control (a guardrail breach), recording why."""
        with self.db.session() as s:
            exp = self._get(s, experiment_id, lock=True)
            arms = [dict(a) for a in exp.arms]
            arm = self._treatment(exp, arms, arm_name)
            if arm.get("paused"):
                return _view(exp)
            arm["paused"] = reason
            exp.arms = arms
            exp.status_reason = f"arm {arm_name!r} paused: {reason}"
            self._set_weights(exp)
            return _view(exp)

    def resume_arm(self, experiment_id: int, arm_name: str) -> dict[str, Any]:
        with self.db.session() as s:
            exp = self._get(s, experiment_id, lock=True)
            self._treatment(exp, exp.arms, arm_name)
            exp.arms = [{**a, "paused": None} if a["name"] == arm_name else a for a in exp.arms]
            exp.status_reason = ""
            self._set_weights(exp)
            return _view(exp)

    def advance(self, experiment_id: int, *, only_if_due: bool = False,
                now: datetime | None = None) -> dict[str, Any]:
        """Move the canary to its next step (when due, with `only_if_due`)."""
        with self.db.session() as s:
            exp = self._get(s, experiment_id, lock=True)
            canary = dict(exp.canary or {})
            if not canary:
                raise _fail(f"experiment {experiment_id} has no canary ramp")
            if canary["step"] + 1 >= len(canary["steps"]):
                if only_if_due:
                    return _view(exp)
                raise Conflict("the canary is at its last step already")
            if only_if_due and not self._due(s, exp, canary, now or utcnow()):
                return _view(exp)
            canary["step"] += 1
            canary["step_started_at"] = (now or utcnow()).isoformat()
            exp.canary = canary
            self._set_weights(exp)
            return _view(exp)

    @staticmethod
    def _due(s: Session, exp: Experiment, canary: dict[str, Any], now: datetime) -> bool:
        if exp.status != "running":
            return False
        started = datetime.fromisoformat(canary.get("step_started_at") or now.isoformat())
        if canary.get("advance_after_s") and now - started >= timedelta(
            seconds=canary["advance_after_s"]
        ):
            return True
        if canary.get("advance_after_n"):
            arm = next(a for a in exp.arms if a["name"] == canary["treatment"])
            served = s.scalar(select(func.count()).select_from(ServedPrediction).where(
                ServedPrediction.experiment_id == exp.id,
                ServedPrediction.candidate == arm["candidate"],
                ServedPrediction.created_at >= started))
            return (served or 0) >= canary["advance_after_n"]
        return False
