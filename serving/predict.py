"""Serving one prediction: route, run the candidate, record the event, run the shadows.

The PredictionMade event and the served-prediction ledger row are written in one transaction
(the outbox), so an answer the caller got is an event the evaluation will see. Shadow candidates
run on a copy of the input after the answer is ready, on a small thread pool, and are recorded
as events of their own (shadow=true); their outputs never reach the caller. The shadow queue is
bounded: when shadows fall behind, new shadow runs are dropped (and counted), never the answer.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from core import events, receipts
from core.errors import AbvocError
from core.latex import tokenize
from core.outbox import outbox_row
from core.settings import Settings
from core.store.db import Database, utcnow
from core.store.groupcommit import GroupCommitter
from core.store.models import OutboxEvent, ServedPrediction
from serving.guardrails import GuardrailMonitor
from serving.pool import DEFAULT_SHADOW_QUEUE, CandidatePool, ShadowQueue
from serving.router import Route, Router

log = logging.getLogger(__name__)

DEFAULT_REFRESH_S = 5.0
_MIDDLE_SCHOOL = {"^", "_", "\\sqrt", "(", ")", "\\alpha", "\\beta", "\\pi", "\\theta"}


def infer_level(latex: str) -> str:
    """'middle' when the output uses middle-school structure, else 'elementary'."""
    tokens = tokenize(latex)
    if _MIDDLE_SCHOOL.intersection(tokens) or tokens.count("\\frac") > 1:
        return "middle"
    return "elementary"


@dataclass(frozen=True)
class PredictRequest:
    image: np.ndarray
    input_hash: str
    unit_id: str
    scope: str = "default"
    slice: str | None = None
    force_arm: str | None = None


class PredictService:
    def __init__(self, db: Database, settings: Settings, router: Router, pool: CandidatePool,
                 monitor: GuardrailMonitor, *, shadow_workers: int = 2,
                 shadow_queue: int = DEFAULT_SHADOW_QUEUE) -> None:
        self.db = db
        self.settings = settings
        self.router = router
        self.pool = pool
        self.monitor = monitor
        self.shadows = ShadowQueue(shadow_workers, shadow_queue)
        self._writes = GroupCommitter(db)
        self._default: tuple[float, str] | None = None

    def default_candidate(self) -> str:
        """The configured default, else the newest registered candidate (looked up at most
        every DEFAULT_REFRESH_S seconds, not on every request)."""
        if self.settings.default_candidate:
            return self.settings.default_candidate
        now = time.monotonic()
        if self._default is None or now - self._default[0] > DEFAULT_REFRESH_S:
            listed = self.pool.registry.list()
            if not listed:
                raise AbvocError("no candidate is registered; run `abvoc train --all`",
                                 status=503)
            self._default = (now, max(listed, key=lambda c: c.created_at).name)
        return self._default[1]

    def _run(self, candidate: str, image: np.ndarray) -> tuple[Any, float, str | None]:
        start = time.perf_counter()
        try:
            result = self.pool.get(candidate).predict_one(image)
            return result, (time.perf_counter() - start) * 1000, None
        except AbvocError:
            raise
        except Exception as exc:  # a candidate's failure is data for its guardrails
            log.exception("candidate %s failed", candidate)
            return None, (time.perf_counter() - start) * 1000, f"{type(exc).__name__}: {exc}"

    def _event(self, req: PredictRequest, route: Route, candidate: str, result: Any,
               latency_ms: float, error: str | None, shadow: bool) -> dict[str, Any]:
        output = result.latex if result is not None else ""
        return events.make_event(
            events.PREDICTION_MADE,
            prediction_id=uuid.uuid4().hex,
            experiment_id=route.experiment_id,
            arm=None if shadow else route.arm,
            candidate=candidate,
            shadow=shadow,
            unit_id=req.unit_id,
            slice=req.slice or f"unknown/{infer_level(output)}",
            input_hash=req.input_hash,
            output=output,
            confidence=result.confidence if result is not None else None,
            latency_ms=round(latency_ms, 3),
            error=error,
            stages=result.stages if result is not None else {},
        )

    def _record(self, event: dict[str, Any], watched: bool = False) -> None:
        """Commit the event and the ledger row together; returns once they are durable.

        A `watched` row (served within an experiment, not forced) carries its latency and
        failure: the guardrails' window, shared by every serving process through the store."""
        self._writes.insert({
            OutboxEvent.__table__: [outbox_row(event, self.settings.topic_prefix)],
            ServedPrediction.__table__: [{
                "prediction_id": event["prediction_id"], "experiment_id": event["experiment_id"],
                "candidate": event["candidate"], "created_at": utcnow(), "arm": event["arm"],
                "latency_ms": event["latency_ms"] if watched else None,
                "error": (event["error"] is not None) if watched else None}],
        })

    def predict(self, req: PredictRequest) -> dict[str, Any]:
        route = self.router.route(req.scope, req.unit_id, self.default_candidate(),
                                  req.force_arm)
        result, latency_ms, error = self._run(route.candidate, req.image)
        event = self._event(req, route, route.candidate, result, latency_ms, error, False)
        experiment = self.router.experiment(req.scope) if route.experiment_id else None
        watched = experiment is not None and not route.forced
        self._record(event, watched)
        if watched:
            self.monitor.observe(experiment, route.arm or "", latency_ms, error is not None)
        for shadow in route.shadows:
            self.shadows.submit(self._shadow, req, route, shadow)
        if error is not None:
            raise AbvocError(f"the candidate failed to answer (prediction {event['prediction_id']}"
                             " recorded); try again", status=503)
        return {
            "prediction_id": event["prediction_id"],
            "output": event["output"],
            "confidence": event["confidence"],
            "receipt": receipts.sign(self.settings.secret_key, event["prediction_id"]),
            "slice": event["slice"],
            "latency_ms": event["latency_ms"],
            "candidate": route.candidate,
            "arm": route.arm,
            "experiment_id": route.experiment_id,
        }

    def _shadow(self, req: PredictRequest, route: Route, candidate: str) -> None:
        try:
            result, latency_ms, error = self._run(candidate, req.image)
            self._record(self._event(req, route, candidate, result, latency_ms, error, True))
        except Exception:
            log.exception("shadow candidate %s failed to record", candidate)

    def close(self) -> None:
        self.shadows.close()
        self._writes.close()
