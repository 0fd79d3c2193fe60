"""Guardrails: pause a treatment arm whose p99 latency, error rate or correction rate breaches
the experiment's limits, and record why.

Every serving process writes each watched request's latency and failure to the store's ledger
(`served_predictions`, with the prediction event), and the window is read back from there: the
last `window` requests of the arm across all processes, so four API worker processes see one window,
not four partial ones, and only those since the arm was last resumed (the requests that paused it
would pause it again at once). Each process checks it every `check_every` of its own requests of
the arm, or every `min_samples` where that is fewer.
Correction rates are the share of the same window's requests with an accepted correction,
checked every `correction_check_s`. A breach pauses the arm for every process through the store.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, func, select

from core.errors import Conflict
from core.store.db import Database
from core.store.models import CorrectionRequest, ServedPrediction
from serving.experiment_spec import BY_GUARDRAIL, GUARDRAIL_WINDOW
from serving.experiments import Experiments

log = logging.getLogger(__name__)

FORGET_AT = 64  # arms counted before the counts of ended experiments are dropped


class GuardrailMonitor:
    def __init__(self, experiments: Experiments, db: Database, *,
                 window: int = GUARDRAIL_WINDOW,
                 check_every: int = 20, correction_check_s: float = 10.0) -> None:
        self.experiments = experiments
        self.db = db
        self.window = window
        self.check_every = check_every
        self.correction_check_s = correction_check_s
        self._seen: dict[tuple[int, str], int] = {}
        self._last_correction_check: dict[int, float] = {}
        self._lock = threading.Lock()
        self._forget_at = FORGET_AT  # the count of arms that sends it to forget ended ones

    def observe(self, experiment: dict[str, Any], arm: str, latency_ms: float,
                error: bool) -> None:
        """Note one served request of `arm` (already in the ledger); check the limits every
        few requests. `latency_ms` and `error` are in the ledger row the window is read from."""
        rails = experiment.get("guardrails") or {}
        if not any(rails.get(k) for k in ("p99_latency_ms", "error_rate", "correction_rate")):
            return
        key = (experiment["id"], arm)
        with self._lock:
            if key not in self._seen and len(self._seen) >= self._forget_at:
                self._forget_ended()
            self._seen[key] = self._seen.get(key, 0) + 1
            # At least every `min_samples` requests: a limit judged on 5 was first checked at
            # the 20th request (check_every), so 20 failures got through where 5 were enough.
            every = min(self.check_every, rails.get("min_samples", 50))
            due = self._seen[key] % every == 0
        if due and (rails.get("p99_latency_ms") or rails.get("error_rate")):
            self._check_window(experiment, arm, self.window_of(
                experiment["id"], arm, resumed_at(experiment, arm)), rails)
        now = time.monotonic()
        if rails.get("correction_rate") and now - self._last_correction_check.get(
            experiment["id"], 0.0
        ) > self.correction_check_s:
            self._last_correction_check[experiment["id"]] = now
            self.check_corrections(experiment)

    def _forget_ended(self) -> None:
        """Drop the counts of experiments that own no scope any more (stopped ones never
        observe again): a long-lived process saw every experiment it ever served otherwise.
        Read at most each time the count doubles, not per request."""
        active = {exp["id"] for exp in self.experiments.active()}
        self._seen = {k: n for k, n in self._seen.items() if k[0] in active}
        self._last_correction_check = {
            k: t for k, t in self._last_correction_check.items() if k in active}
        self._forget_at = max(FORGET_AT, 2 * len(self._seen))

    def window_of(self, experiment_id: int, arm: str, since: datetime | None = None
                  ) -> list[tuple[float, bool]]:
        """The arm's last `window` watched requests (from `since`), from every serving
        process."""
        sp = ServedPrediction
        with self.db.reading() as s:
            rows = s.execute(
                select(sp.latency_ms, sp.error)
                .where(sp.experiment_id == experiment_id, sp.arm == arm,
                       sp.routed(), *_from(since))
                .order_by(sp.created_at.desc()).limit(self.window)).all()
        return [(float(latency), bool(error)) for latency, error in rows]

    def _breach(self, experiment: dict[str, Any], arm: str, reason: str) -> None:
        control = next(a for a in experiment["arms"] if a["control"])
        if arm == control["name"]:
            log.warning("guardrail breached on the control arm of %s: %s", experiment["id"],
                        reason)
            return
        log.warning("pausing arm %r of experiment %s: %s", arm, experiment["id"], reason)
        try:
            self.experiments.pause_arm(experiment["id"], arm, reason, by=BY_GUARDRAIL)
        except Conflict as exc:  # stopped meanwhile (this process's view was older): no traffic
            log.info("arm %r of experiment %s not paused: %s", arm, experiment["id"], exc)

    def _check_window(self, experiment: dict[str, Any], arm: str,
                      samples: list[tuple[float, bool]], rails: dict[str, Any]) -> None:
        if len(samples) < rails.get("min_samples", 50):
            return
        latencies = np.fromiter((s[0] for s in samples), float, len(samples))
        errors = sum(s[1] for s in samples) / len(samples)
        p99 = float(np.percentile(latencies, 99))
        if rails.get("p99_latency_ms") and p99 > rails["p99_latency_ms"]:
            self._breach(experiment, arm, f"p99 latency {p99:.1f} ms over the last "
                         f"{len(samples)} requests exceeds the limit of "
                         f"{rails['p99_latency_ms']} ms")
        elif rails.get("error_rate") and errors > rails["error_rate"]:
            self._breach(experiment, arm, f"error rate {errors:.1%} over the last "
                         f"{len(samples)} requests exceeds the limit of {rails['error_rate']:.1%}")

    def check_corrections(self, experiment: dict[str, Any]) -> None:
        """Pause any treatment whose share of corrected predictions among its last `window`
        routed requests (the p99 and error-rate window) is over the limit: a treatment that
        turns bad late is caught however long it served well before."""
        rails = experiment.get("guardrails") or {}
        limit = rails.get("correction_rate")
        if not limit:
            return
        for arm in experiment["arms"]:
            if arm.get("paused"):
                continue
            n, corrected = self.corrections_of(experiment["id"], arm["name"],
                                               resumed_at(experiment, arm["name"]))
            if n >= rails.get("min_samples", 50):
                rate = corrected / n
                if rate > limit:
                    self._breach(experiment, arm["name"], f"correction rate {rate:.1%} over the "
                                 f"last {n} requests exceeds the limit of {limit:.1%}")

    def corrections_of(self, experiment_id: int, arm: str, since: datetime | None = None
                       ) -> tuple[int, int]:
        """The arm's last `window` routed requests (from `since`), from every serving process,
        and how many of them were corrected."""
        sp = ServedPrediction
        last = (select(sp.prediction_id)
                .where(sp.experiment_id == experiment_id, sp.arm == arm, sp.routed(),
                       *_from(since))
                .order_by(sp.created_at.desc()).limit(self.window).subquery())
        with self.db.reading() as s:
            n = s.scalar(select(func.count()).select_from(last)) or 0
            corrected = s.scalar(
                select(func.count(func.distinct(CorrectionRequest.prediction_id)))
                .select_from(CorrectionRequest)
                .join(last, CorrectionRequest.prediction_id == last.c.prediction_id)) or 0
        return int(n), int(corrected)


def resumed_at(experiment: dict[str, Any], arm: str) -> datetime | None:
    """When `arm` was last resumed (None: never paused and resumed)."""
    at = next((a.get("resumed_at") for a in experiment["arms"] if a["name"] == arm), None)
    return datetime.fromisoformat(at) if at else None


def _from(since: datetime | None) -> list[ColumnElement[bool]]:
    return [ServedPrediction.created_at >= since] if since is not None else []
