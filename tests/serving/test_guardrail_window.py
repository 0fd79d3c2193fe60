"""Guardrail windows are shared by every serving process: they are read from the store; a
resumed arm's start again at its resume."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import AbvocError
from core.store.db import Database, utcnow
from core.store.models import ServedPrediction
from serving.experiments import Experiments
from serving.guardrails import GuardrailMonitor, resumed_at
from serving.registry import Registry

ARMS = [{"name": "control", "candidate": "a", "weight": 1, "control": True},
        {"name": "slow", "candidate": "b", "weight": 1}]


def _started(db: Database, guardrails: dict[str, Any]) -> tuple[Experiments, dict]:
    registry = Registry(db)
    registry.register("a", "1")
    registry.register("b", "1")
    experiments = Experiments(db)
    exp = experiments.create({"name": "e", "arms": ARMS, "guardrails": guardrails})
    return experiments, experiments.start(exp["id"])


def _serve(db: Database, monitor: GuardrailMonitor, exp: dict, n: int, latency: float,
           start: int, error: bool = False) -> None:
    """What PredictService does per request: the ledger row, then observe."""
    for i in range(start, start + n):
        with db.session() as s:
            s.add(ServedPrediction(prediction_id=f"p{i}", experiment_id=exp["id"], candidate="b",
                                   arm="slow", latency_ms=latency, error=error,
                                   created_at=utcnow()))
        monitor.observe(exp, "slow", latency, error)


def test_two_processes_fill_one_window(db: Database) -> None:
    experiments, exp = _started(db, {"p99_latency_ms": 50, "min_samples": 40})
    # Two serving processes, each with its own monitor; each sees only 20 slow requests, under
    # min_samples alone, but the window they share holds 40.
    first = GuardrailMonitor(experiments, db, check_every=20)
    second = GuardrailMonitor(experiments, db, check_every=20)
    _serve(db, first, exp, 20, 80.0, 0)
    assert not experiments.get(exp["id"])["arms"][1]["paused"]
    _serve(db, second, exp, 20, 80.0, 20)
    paused = experiments.get(exp["id"])["arms"][1]["paused"]
    assert paused and "p99 latency 80.0 ms over the last 40 requests" in paused
    assert len(first.window_of(exp["id"], "slow")) == 40


def test_a_resumed_arm_is_judged_on_what_it_serves_after(db: Database) -> None:
    """The window held the failures that paused the arm, so the check right after a resume
    paused it again, and a fixed arm could never come back."""
    experiments, exp = _started(db, {"error_rate": 0.05, "min_samples": 40})
    monitor = GuardrailMonitor(experiments, db, check_every=20)
    _serve(db, monitor, exp, 40, 5.0, 0, error=True)
    assert "error rate 100.0% over the last 40" in experiments.get(exp["id"])["arms"][1]["paused"]
    resumed = experiments.resume_arm(exp["id"], "slow")
    assert resumed["arms"][1]["resumed_at"] and not resumed["arms"][1]["paused"]
    _serve(db, monitor, resumed, 60, 5.0, 40)  # as the router sees it after the resume
    assert not experiments.get(exp["id"])["arms"][1]["paused"]
    assert monitor.corrections_of(exp["id"], "slow", resumed_at(resumed, "slow"))[0] == 60
    _serve(db, monitor, resumed, 20, 5.0, 100, error=True)  # failing again: paused on these
    assert "error rate 25.0% over the last 80 " in experiments.get(exp["id"])["arms"][1]["paused"]


def test_min_samples_past_the_window_is_refused(db: Database) -> None:
    """The window holds the arm's last 500 requests: with `min_samples` 501 accepted, 1,000
    failed requests in a row never paused the arm (the guardrail could never act)."""
    experiments, exp = _started(db, {"error_rate": 0.05, "min_samples": 500})
    monitor = GuardrailMonitor(experiments, db, check_every=20)
    _serve(db, monitor, exp, 500, 5.0, 0, error=True)
    assert experiments.get(exp["id"])["arms"][1]["paused"]
    with pytest.raises(AbvocError, match="min_samples must be a whole number from 1 to 500"):
        experiments.create({"name": "past", "arms": ARMS,
                            "guardrails": {"error_rate": 0.05, "min_samples": 501}})


def test_a_limit_on_fewer_samples_than_the_check_interval_is_judged_when_they_are_in(
        db: Database) -> None:
    """`min_samples` 5 was judged only at each process's 20th request of the arm (the check
    interval): 20 failures got through where the operator had asked for a verdict after 5."""
    experiments, exp = _started(db, {"error_rate": 0.5, "min_samples": 5})
    monitor = GuardrailMonitor(experiments, db)  # the service's check interval, 20
    _serve(db, monitor, exp, 4, 5.0, 0, error=True)
    assert not experiments.get(exp["id"])["arms"][1]["paused"]
    _serve(db, monitor, exp, 1, 5.0, 4, error=True)
    paused = experiments.get(exp["id"])["arms"][1]["paused"]
    assert paused and "error rate 100.0% over the last 5 requests" in paused
