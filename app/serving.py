"""The serving objects one app process holds, built once from its services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app

from app.auth import current_scopes
from core.startup import Services
from serving.experiments import Experiments
from serving.guardrails import GuardrailMonitor
from serving.pool import CandidatePool
from serving.predict import CandidateFailed, PredictRequest, PredictService
from serving.registry import Registry
from serving.router import Router

if TYPE_CHECKING:
    from app.metrics import Metrics


@dataclass
class Serving:
    registry: Registry
    experiments: Experiments
    router: Router
    pool: CandidatePool
    monitor: GuardrailMonitor
    predict: PredictService

    @classmethod
    def build(cls, services: Services, *, router_refresh_s: float = 1.0) -> Serving:
        db, settings = services.db, services.settings
        registry = Registry(db)
        experiments = Experiments(db)
        router = Router(experiments, refresh_s=router_refresh_s)
        pool = CandidatePool(registry, settings.models_dir)
        monitor = GuardrailMonitor(experiments, db)
        return cls(registry, experiments, router, pool, monitor,
                   PredictService(db, settings, router, pool, monitor))

    def close(self) -> None:
        # Shadows run on the pool's candidates; the candidates' batchers finish what is queued,
        # committing those records through the predict service's writer, which closes last.
        self.predict.shadows.close()
        self.pool.close()
        self.predict.close()
        self.router.close()


def serve(req: PredictRequest) -> dict[str, Any]:
    """Serve one request through the app's serving path and count it in the Prometheus metrics
    (every endpoint, every candidate kind)."""
    return serve_counted(current_app.extensions["abvoc_serving"],
                         current_app.extensions["abvoc_metrics"], req,
                         admin="admin" in current_scopes())


def serve_counted(serving: Serving, metrics: Metrics, req: PredictRequest, *,
                  admin: bool) -> dict[str, Any]:
    """:func:`serve` outside a Flask request (the V2 lane, app.api.v2_lane): `admin` says
    whether the caller may learn a failed candidate's internals."""
    try:
        answer = serving.predict.predict(req)
    except CandidateFailed as failed:
        metrics.count_prediction(failed.candidate, ok=False)
        if admin:  # only admin keys learn the candidate's internals
            failed.message = failed.detail or failed.message
        raise
    metrics.count_prediction(answer["candidate"], ok=True, seconds=answer["latency_ms"] / 1000)
    return answer
