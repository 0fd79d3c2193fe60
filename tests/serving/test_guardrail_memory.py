"""A long-lived serving process forgets the guardrail counts of experiments that ended."""

from __future__ import annotations

import pytest

import serving.guardrails as guardrails
from core.store.db import Database
from serving.experiments import Experiments
from serving.guardrails import GuardrailMonitor
from serving.registry import Registry

ARMS = [{"name": "control", "candidate": "a", "weight": 1, "control": True},
        {"name": "treat", "candidate": "b", "weight": 1}]
RAILS = {"p99_latency_ms": 50, "correction_rate": 0.5, "min_samples": 500}


def test_counts_of_stopped_experiments_are_dropped(db: Database,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """40 experiments started, served and stopped left 80 arm counts and 40 check times."""
    monkeypatch.setattr(guardrails, "FORGET_AT", 8)
    registry = Registry(db)
    registry.register("a", "1")
    registry.register("b", "1")
    experiments = Experiments(db)
    monitor = GuardrailMonitor(experiments, db, check_every=1000)
    for i in range(40):
        exp = experiments.start(experiments.create(
            {"name": f"e{i}", "scope": "s", "arms": ARMS, "guardrails": RAILS})["id"])
        for arm in ("control", "treat"):
            monitor.observe(exp, arm, 10.0, False)
        assert len(monitor._seen) <= 16 and len(monitor._last_correction_check) <= 16
        if i < 39:
            experiments.stop(exp["id"])
    # The running one keeps its counts: the next request of its arm adds to them.
    assert monitor._seen[(exp["id"], "treat")] == 1
    monitor.observe(exp, "treat", 10.0, False)
    assert monitor._seen[(exp["id"], "treat")] == 2
