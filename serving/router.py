"""The traffic router: which arm (and so which candidate) serves a unit, and which shadows run.

The experiment's `unit` says what is randomized: for `user` and `session` the unit id the request
carries (a user's or a session's id) is hashed, so its requests stick to one arm; for `request`
each request is its own unit, assigned by a fresh random key that the route hands on as the unit
id its event records, so the unit counts, the per-unit analysis and the sample-ratio check all
count requests.

It keeps the active experiments in memory and reloads them when a routing change is committed
(a kill, a pause, a canary step ...: serving/route_changes.py tells every process on the store
within milliseconds, with no query per request) and every `refresh_s` seconds besides; the
decision itself is a hash and a table look-up.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.errors import AbvocError
from core.text import quoted_names, shown
from serving.assignment import Allocation, Assigner
from serving.canary_steps import CanarySteps
from serving.experiments import Experiments
from serving.route_changes import watch


@dataclass(frozen=True)
class Shadow:
    """A candidate run beside the served one; `version` None: its newest."""

    candidate: str
    version: str | None = None


@dataclass(frozen=True)
class Route:
    """Where one request goes: a candidate, and the version an experiment pinned (None outside
    experiments, and for experiments made before versions were pinned: the newest)."""

    candidate: str
    experiment_id: int | None = None
    arm: str | None = None
    forced: bool = False
    shadows: tuple[Shadow, ...] = field(default_factory=tuple)
    version: str | None = None
    # The experiment's status when it is not running (paused, killed): every unit then goes to
    # its control, outside the split its figures compare.
    held: str | None = None
    # The unit the experiment counts when it is not the caller's: unit `request` randomizes each
    # request, so its event records this per-request key (None: the request's own unit id).
    unit_id: str | None = None


@dataclass(frozen=True)
class _Active:
    experiment: dict[str, Any]
    assigner: Assigner
    control: int

    @property
    def id(self) -> int:
        return self.experiment["id"]


class Router:
    def __init__(self, experiments: Experiments, *, refresh_s: float = 1.0) -> None:
        self.experiments = experiments
        self.refresh_s = refresh_s
        self._by_scope: dict[str, _Active] = {}
        self._loaded_at = 0.0
        self._lock = threading.Lock()
        # Changes asked for (`invalidate`) and the last one a load began after: a change
        # committed while a load reads is loaded again.
        self._wanted = self._loaded = 0
        self._watch = watch(experiments.db)
        self._steps = CanarySteps(experiments)
        experiments.routers.append(self)

    def invalidate(self) -> None:
        """Reload at the next route call: the experiments changed."""
        self._wanted += 1

    def changing(self) -> Callable[[], None]:
        """Called before a routing change of this process commits; the function it returns,
        after: this router reloads at once, and on PostgreSQL the change waits (briefly) for
        its own notice, so the other processes have theirs when its caller is answered."""
        seen = self._watch.received() if self._watch else 0

        def committed() -> None:
            self.invalidate()
            if self._watch:
                self._watch.await_notice(seen)
        return committed

    def close(self) -> None:
        self._steps.close()
        if self._watch:
            self._watch.close()

    def refresh(self) -> None:
        """Reload active experiments now, a read only: running canaries are stepped, when due,
        on another thread (serving/canary_steps.py), never on the request waiting for this."""
        wanted = self._wanted
        by_scope: dict[str, _Active] = {}
        canaries = []
        for exp in self.experiments.active():
            if exp["canary"] and exp["status"] == "running":
                canaries.append(exp["id"])
            control = next(i for i, a in enumerate(exp["arms"]) if a["control"])
            table = Allocation.from_doc(exp["allocation_table"])
            by_scope[exp["scope"]] = _Active(exp, Assigner(table, exp["salt"], control), control)
        self._by_scope = by_scope
        self._loaded_at = time.monotonic()
        self._loaded = wanted
        if canaries:
            self._steps.ask(canaries)

    def _due(self) -> bool:
        return self._loaded != self._wanted or time.monotonic() - self._loaded_at > self.refresh_s

    def _current(self, scope: str) -> _Active | None:
        if self._watch is not None and self._watch.changed():
            self.invalidate()
        if self._due():
            with self._lock:
                if self._due():
                    self.refresh()
        return self._by_scope.get(scope)

    def experiment(self, scope: str) -> dict[str, Any] | None:
        active = self._current(scope)
        return active.experiment if active else None

    def reloaded(self, scope: str) -> dict[str, Any] | None:
        """The scope's experiment after reloading now: one started since the last load (by
        another process, or a moment ago) owns its scope before a request is refused for want
        of one."""
        active = self._reload(scope)
        return active.experiment if active else None

    def _reload(self, scope: str) -> _Active | None:
        with self._lock:
            self.refresh()
            return self._by_scope.get(scope)

    def route(self, scope: str, unit_id: str | None, default_candidate: Callable[[], str],
              force_arm: str | None = None, unit_from: str = "'unit_id'") -> Route:
        """The route for one unit; `default_candidate()` when no experiment owns the scope. A
        request without a unit id is served only where the scope's experiment has unit
        `request` (its per-request key is the unit); elsewhere it is a 400 asking for the id in
        `unit_from`, where the caller sends it."""
        # Before refusing for want of an experiment, look once more: one may have started since
        # the last load.
        active = self._current(scope)
        if active is None and force_arm:
            active = self._reload(scope)
            if active is None:
                raise AbvocError(f"no experiment runs in scope {scope!r}; cannot force an arm")
        if active is None:
            try:
                route = Route(default_candidate())
            except AbvocError:
                active = self._reload(scope)
                if active is None:  # not started since the last load either
                    raise
            else:
                need_unit(unit_id, unit_from)
                return route
        exp = active.experiment
        if exp.get("unit") != "request":
            need_unit(unit_id, unit_from)
        arms = exp["arms"]
        forced = None
        if force_arm is not None:
            forced = next((i for i, a in enumerate(arms) if a["name"] == force_arm), None)
            if forced is None:
                raise AbvocError(f"arm {shown(force_arm)} is not in experiment {exp['id']}; its "
                                 f"arms are {quoted_names(a['name'] for a in arms)}")
        per_request = request_key() if exp.get("unit") == "request" else None
        index = active.assigner.assign(per_request or unit_id, force=forced,
                                       killed=exp["status"] != "running")
        arm = arms[index]
        shadows = tuple(Shadow(s["candidate"], s.get("version")) for s in exp["shadows"]) \
            if exp["status"] == "running" else ()
        return Route(arm["candidate"], exp["id"], arm["name"], forced is not None, shadows,
                     arm.get("version"), None if exp["status"] == "running" else exp["status"],
                     per_request)


def need_unit(unit_id: str | None, unit_from: str) -> None:
    """400 for a request without a unit id where the route needs one: outside experiments
    (the event records the caller's unit) and for units `user` and `session` (the id is what
    keeps a unit's requests on one arm)."""
    if unit_id is None:
        raise AbvocError(f"give the unit (the user or session) this request is for in "
                         f"{unit_from}: only a scope whose experiment assigns each request on "
                         "its own (unit 'request') serves a request without one")


def request_key() -> str:
    """A fresh unit id for one request of a `request`-unit experiment: random (never derived
    from the caller's unit id, which would make a unit's requests stick together again)."""
    return f"request:{secrets.token_hex(12)}"
