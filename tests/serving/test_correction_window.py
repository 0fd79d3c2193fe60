"""The correction-rate guardrail reads the arm's last `window` routed requests, like the p99
and error-rate checks: a treatment that turns bad late is caught, and old corrections age out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.store.db import Database, utcnow
from core.store.models import CorrectionRequest, ServedPrediction
from serving.experiments import Experiments
from serving.guardrails import GuardrailMonitor

ARMS = [{"name": "ctl", "candidate": "a", "weight": 1, "control": True},
        {"name": "t", "candidate": "b", "weight": 1}]


def _serve(db: Database, exp: int, phases: list[tuple[int, bool]]) -> None:
    """Arm t's routed requests in order, each phase `n` requests corrected or not; a few
    unrouted rows (forced QA) corrected too, which no window holds."""
    start = utcnow() - timedelta(hours=1)
    i = 0
    with db.session() as s:
        for n, corrected in phases:
            for _ in range(n):
                pid = f"p{i}"
                s.add(ServedPrediction(prediction_id=pid, experiment_id=exp, candidate="b",
                                       arm="t", latency_ms=5.0, error=False,
                                       created_at=start + timedelta(milliseconds=i)))
                if corrected:
                    s.add(CorrectionRequest(idempotency_key=f"k{i}", correction_id=f"c{i}",
                                            prediction_id=pid, request_hash="h",
                                            created_at=start))
                i += 1


def _monitored(db: Database, experiments: Experiments, limit: float) -> dict[str, Any]:
    exp = experiments.create({"name": "e", "arms": ARMS,
                              "guardrails": {"correction_rate": limit, "min_samples": 50}})
    return experiments.start(exp["id"])


def test_a_treatment_corrected_late_is_paused_on_its_last_requests(
        db: Database, experiments: Experiments) -> None:
    exp = _monitored(db, experiments, 0.5)
    _serve(db, exp["id"], [(790, False), (496, True), (60, False)])
    monitor = GuardrailMonitor(experiments, db)
    monitor.check_corrections(exp)  # 37 % over the arm's life, 88 % of its last 500
    paused = experiments.get(exp["id"])["arms"][1]["paused"]
    assert paused and "correction rate 88.0% over the last 500 requests" in paused
    assert monitor.corrections_of(exp["id"], "t") == (500, 440)


def test_corrections_older_than_the_window_do_not_pause(
        db: Database, experiments: Experiments) -> None:
    exp = _monitored(db, experiments, 0.3)
    _serve(db, exp["id"], [(400, True), (500, False)])  # 44 % lifetime, 0 % of the last 500
    GuardrailMonitor(experiments, db).check_corrections(exp)
    assert not experiments.get(exp["id"])["arms"][1]["paused"]
