"""Experiments: arms with weights, shadows, a canary ramp and guardrails, stored as data.

Life cycle: draft → running ⇄ paused → stopped; `kill` sends every unit to control at once and
`resume` undoes it. Only one experiment owns a traffic scope while it is running, paused or
killed. Weight changes (a canary step, a pause of one arm) go through `reallocate`, so only the
units that must move change arm. The arms' candidates are pinned and checked against the
registry in serving/experiment_candidates.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import AbvocError, Conflict, NotFound
from core.store.db import Database, utcnow
from core.store.models import Experiment, ServedPrediction
from core.text import quoted, quoted_names, shown, text_problem
from core.times import utc_iso
from serving.assignment import Allocation, allocate, reallocate
from serving.experiment_candidates import check_still_active, pin_candidates
from serving.experiment_spec import ACTIVE, BY_ADMIN, UNPAUSED, check_spec, fail
from serving.route_changes import announce, changed_in, mark_changed

if TYPE_CHECKING:
    from serving.router import Router

OPERATOR_PAUSE = "paused by an operator"
"""The reason a pause (of an experiment or an arm) keeps when the operator gives none."""
KILL_SWITCH = "kill switch"
"""The reason a kill keeps when the operator gives none."""
MAX_REASON = 500
"""The longest reason an operator may give for a pause or a kill (characters)."""


def check_reason(reason: object) -> None:
    """An operator's reason for a pause or a kill, as the API and the CLI take it: words (a
    blank one recorded nothing said), at most MAX_REASON characters; None is the default's."""
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON
                               or not reason.strip()):
        raise AbvocError(f"'reason' must say why in at most {MAX_REASON} characters (not "
                         "blank), or be left out for the default")
    # Shown on one line by `abvoc experiment list`, the pages and the report: a line break
    # split that line, and an escape sequence reached the operator's terminal as one.
    if reason is not None and (problem := text_problem(reason, controls=True)):
        raise AbvocError(f"'reason' {problem}")


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


def _home(exp: Experiment) -> Allocation:
    """The allocation the experiment was created with (no arm paused, the canary at its first
    step), which `create` stored first: it says whose each bucket is, so a resumed arm gets
    its own units back (serving/assignment.reallocate)."""
    canary = {**exp.canary, "step": 0} if exp.canary else {}
    return allocate(effective_weights({"arms": [{**a, **UNPAUSED} for a in exp.arms],
                                       "canary": canary}))


def _weights_now(exp: Experiment) -> list[float]:
    """The weights traffic follows now: a paused or killed experiment sends every unit to its
    control; a draft or a stopped one shows the split it was set up with."""
    if exp.status in ("paused", "killed"):
        return [1.0 if a["control"] else 0.0 for a in exp.arms]
    return [round(w, 6) for w in effective_weights(exp)]


def _arms_reason(arms: list[dict[str, Any]]) -> str:
    """The status reason the arms leave: the first paused arm's, else none."""
    paused = next((a for a in arms if a.get("paused")), None)
    return f"arm {quoted(paused['name'])} paused: {paused['paused']}" if paused else ""


def _set_reason(exp: Experiment, reason: str) -> None:
    """A new status reason (an arm paused or resumed) starts the status's time anew."""
    if reason != exp.status_reason:
        exp.status_reason, exp.status_since = reason, utcnow()


def _restart_step(exp: Experiment) -> None:
    """Start the canary step's clock (and its request count, which counts from it) again: a
    step held while its arm got no traffic must still serve its full time and requests."""
    exp.canary = {**exp.canary, "step_started_at": utcnow().isoformat()}


def _ramp_held(exp: Experiment, treatment: str) -> str | None:
    """Why the canary's treatment gets no traffic now (its ramp holds), or None."""
    if exp.status != "running":
        return f"is {exp.status}"
    paused = any(a["name"] == treatment and a.get("paused") for a in exp.arms)
    return f"has its arm {quoted(treatment)} paused" if paused else None


def _view(exp: Experiment) -> dict[str, Any]:
    return {
        "id": exp.id, "name": exp.name, "scope": exp.scope, "status": exp.status,
        "status_reason": exp.status_reason, "unit": exp.unit, "salt": exp.salt,
        "arms": exp.arms, "weights": _weights_now(exp),
        "shadows": exp.shadows, "canary": exp.canary, "guardrails": exp.guardrails,
        "primary_metric": exp.primary_metric,
        "expected_sample_per_arm": exp.expected_sample_per_arm,
        # Stored as JSON text; shown as an object, not a string a client parses again.
        "allocation_table": json.loads(table) if (table := exp.allocation.get("table")) else None,
        "created_at": utc_iso(exp.created_at),
        "started_at": utc_iso(exp.started_at),
        "stopped_at": utc_iso(exp.stopped_at),
        "status_since": utc_iso(exp.status_since),
    }


class Experiments:
    """Create and steer experiments; every change is one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # This process's routers on these experiments (serving.router.Router adds itself).
        self.routers: list[Router] = []

    @contextmanager
    def _changing(self) -> Iterator[Session]:
        """A unit of work that may change how traffic routes (it says so with
        `mark_changed`): every serving process on the store follows right after its commit,
        this one's routers at once (serving/route_changes.py)."""
        committed = [router.changing() for router in self.routers]
        with self.db.session() as s:
            yield s
            changed = changed_in(s)
        if changed:
            announce(self.db)
            for done in committed:
                done()

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        checked = check_spec(spec)
        arms, shadows = checked["arms"], checked["shadows"]
        name = checked["name"]
        with self.db.session() as s:
            pin_candidates(s, [*arms, *shadows], checked["primary_metric"])
            if s.scalar(select(Experiment.id).where(Experiment.name == name)) is not None:
                raise Conflict(f"an experiment named {quoted(name)} exists already")
            now = utcnow()
            exp = Experiment(**checked, status="draft", status_reason="", created_at=now,
                             status_since=now)
            exp.allocation = {"table": allocate(effective_weights(exp)).to_json()}
            s.add(exp)
            try:
                # The unique name decides a race between two creates the check above could
                # not see (on PostgreSQL, the loser waits for the winner's commit, then fails).
                s.flush()
            except IntegrityError:
                raise Conflict(f"an experiment named {quoted(name)} exists already") from None
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
        """Experiments that own their scope now (running, paused or killed): the router's
        poll, on the request path."""
        with self.db.reading(own_answers=False) as s:
            query = select(Experiment).where(Experiment.status.in_(ACTIVE))
            return [_view(e) for e in s.scalars(query)]

    def serving(self, name: str, version: str) -> list[dict[str, Any]]:
        """The experiments that own their scope now and route to candidate `name` at
        `version` (an arm or a shadow): they keep serving it whatever the registry says, until
        they stop, so retiring it must say so."""
        return [{"experiment_id": e["id"], "name": e["name"], "status": e["status"],
                 "as": ref.get("name") or "shadow"}
                for e in self.active()
                for ref in [*e["arms"], *(e["shadows"] or [])]
                if ref["candidate"] == name and ref.get("version") == version]

    def _transition(self, experiment_id: int, allowed: tuple[str, ...], status: str,
                    reason: str = "") -> dict[str, Any]:
        with self._changing() as s:
            exp = self._get(s, experiment_id, lock=True)
            if exp.status not in allowed:
                raise Conflict(f"experiment {experiment_id} is {exp.status}; "
                               f"it must be {' or '.join(allowed)} for that")
            now = utcnow()
            if status == "running" and exp.status == "draft":
                owner = s.execute(select(Experiment.name, Experiment.status).where(
                    Experiment.scope == exp.scope, Experiment.status.in_(ACTIVE),
                    Experiment.id != exp.id)).first()
                if owner is not None:
                    raise Conflict(f"scope {quoted(exp.scope)} is owned by {owner.status} "
                                   f"experiment {quoted(owner.name)}; stop it first")
                check_still_active(s, exp)
                exp.started_at = now
                if exp.canary:
                    exp.canary = {**exp.canary, "step_started_at": now.isoformat()}
            if status == "stopped":
                exp.stopped_at = now
            if status == "running" and exp.status in ("paused", "killed") and exp.canary:
                _restart_step(exp)  # the step served nobody while it was held
            scope = exp.scope
            exp.status = status
            # Resuming keeps a paused arm's reason: that arm still gets no traffic.
            exp.status_reason = reason or _arms_reason(exp.arms)
            exp.status_since = now
            try:
                # The store's partial unique index on an active scope decides a race between
                # two starts the check above could not see (on PostgreSQL, the loser waits for
                # the winner's commit, then fails here).
                s.flush()
            except IntegrityError:
                raise Conflict(f"scope {quoted(scope)} was just taken by another experiment; "
                               "stop it first") from None
            mark_changed(s)
            return _view(exp)

    def start(self, experiment_id: int) -> dict[str, Any]:
        return self._transition(experiment_id, ("draft",), "running")

    def pause(self, experiment_id: int, reason: str = OPERATOR_PAUSE) -> dict[str, Any]:
        return self._transition(experiment_id, ("running",), "paused", reason)

    def resume(self, experiment_id: int) -> dict[str, Any]:
        return self._transition(experiment_id, ("paused", "killed"), "running")

    def kill(self, experiment_id: int, reason: str = KILL_SWITCH) -> dict[str, Any]:
        return self._transition(experiment_id, ("running", "paused"), "killed", reason)

    def stop(self, experiment_id: int) -> dict[str, Any]:
        return self._transition(experiment_id, (*ACTIVE, "draft"), "stopped")

    def _set_weights(self, exp: Experiment) -> None:
        old = Allocation.from_json(exp.allocation["table"])
        # `since`: when this split began, so the sample-ratio check compares each unit with the
        # split in force when it came (evaluation/srm_check.py).
        table = reallocate(old, effective_weights(exp), home=_home(exp))
        exp.allocation = {"table": table.to_json(), "since": utcnow().isoformat()}

    @staticmethod
    def _treatment(exp: Experiment, arms: list[dict[str, Any]], name: str) -> dict[str, Any]:
        """The treatment arm called `name`: 404 when there is none, 400 for the control."""
        arm = next((a for a in arms if a["name"] == name), None)
        if arm is None:
            raise NotFound(f"experiment {exp.id} has no arm {shown(name)}; its arms are "
                           f"{quoted_names(a['name'] for a in arms)}")
        if arm["control"]:
            raise fail(f"{quoted(name)} is the control arm of experiment {exp.id}; only treatment "
                        "arms are paused and resumed")
        return arm

    @staticmethod
    def _steering(exp: Experiment, what: str) -> None:
        """Arms and canary steps are steered while the experiment owns its scope; a draft
        starts from its set-up and a stopped one is done (409 for either)."""
        if exp.status not in ACTIVE:
            raise Conflict(f"experiment {exp.id} is {exp.status}; {what} only while it is "
                           f"{', '.join(ACTIVE[:-1])} or {ACTIVE[-1]}")

    def pause_arm(self, experiment_id: int, arm_name: str, reason: str = OPERATOR_PAUSE,
                  by: str = BY_ADMIN) -> dict[str, Any]:
        """Send a treatment's traffic to control, recording why and who (admin, guardrail)."""
        with self._changing() as s:
            exp = self._get(s, experiment_id, lock=True)
            arms = [dict(a) for a in exp.arms]
            arm = self._treatment(exp, arms, arm_name)
            self._steering(exp, "arms are paused")
            if arm.get("paused"):
                return _view(exp)
            arm["paused"], arm["paused_by"] = reason, by
            exp.arms = arms
            mark_changed(s)
            if exp.status == "running":  # an operator's pause or a kill keeps its own reason
                _set_reason(exp, _arms_reason(arms))
            self._set_weights(exp)
            return _view(exp)

    def resume_arm(self, experiment_id: int, arm_name: str) -> dict[str, Any]:
        """Give a paused treatment its traffic back. An arm that is not paused is left as it
        is (as `pause_arm` leaves a paused one): a new `allocation.since` would restart the
        sample-ratio check and hide a mismatch already seen, with the split unchanged."""
        with self._changing() as s:
            exp = self._get(s, experiment_id, lock=True)
            arm = self._treatment(exp, exp.arms, arm_name)
            self._steering(exp, "arms are resumed")
            if not arm.get("paused"):
                return _view(exp)
            # The guardrails' windows start again here: the requests that paused the arm
            # would pause it again at the next check, before it served enough to say otherwise.
            exp.arms = [{**a, **UNPAUSED, "resumed_at": utcnow().isoformat()}
                        if a["name"] == arm_name else a for a in exp.arms]
            if exp.status == "running":
                _set_reason(exp, _arms_reason(exp.arms))
            if exp.canary and exp.canary["treatment"] == arm_name:
                _restart_step(exp)
            self._set_weights(exp)
            mark_changed(s)
            return _view(exp)

    def advance(self, experiment_id: int, *, only_if_due: bool = False,
                now: datetime | None = None) -> dict[str, Any]:
        """Move the canary to its next step (when due, with `only_if_due`)."""
        with self._changing() as s:
            exp = self._get(s, experiment_id, lock=True)
            canary = dict(exp.canary or {})
            if not canary:
                raise fail(f"experiment {experiment_id} has no canary ramp")
            if exp.status not in ACTIVE and only_if_due:
                return _view(exp)
            self._steering(exp, "its canary is stepped (a paused or killed one holds its step)")
            held = _ramp_held(exp, canary["treatment"])
            if held and not only_if_due:
                raise Conflict(f"experiment {exp.id} {held}: its canary holds its step while "
                               "the treatment gets no traffic; resume it first")
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
            mark_changed(s)
            return _view(exp)

    @staticmethod
    def _due(s: Session, exp: Experiment, canary: dict[str, Any], now: datetime) -> bool:
        """Whether the step has run its time and served its requests (each where given): only
        while the canary's arm gets traffic (a paused experiment or treatment arm holds the ramp
        where it is). Given both, time alone stepped a canary that had served nobody."""
        if _ramp_held(exp, canary["treatment"]):
            return False
        started = datetime.fromisoformat(canary.get("step_started_at") or now.isoformat())
        if canary.get("advance_after_s") and now - started < timedelta(
            seconds=canary["advance_after_s"]
        ):
            return False
        if canary.get("advance_after_n"):
            # The treatment arm's requests as routed (the guardrails' rows: a forced QA request,
            # a shadow copy or another arm on the same candidate is none of them).
            served = s.scalar(select(func.count()).select_from(ServedPrediction).where(
                ServedPrediction.experiment_id == exp.id,
                ServedPrediction.arm == canary["treatment"],
                ServedPrediction.routed(),
                ServedPrediction.created_at >= started))
            return (served or 0) >= canary["advance_after_n"]
        return bool(canary.get("advance_after_s"))
