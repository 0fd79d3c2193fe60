"""A canary ramp holds its step while its treatment arm (or the experiment) gets no traffic,
and the step's clock and request count start again when traffic resumes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.errors import Conflict
from core.store.db import Database, utcnow
from core.store.models import Experiment, ServedPrediction
from serving.experiments import Experiments

ARMS = [{"name": "ctl", "candidate": "a", "weight": 1, "control": True},
        {"name": "t", "candidate": "b", "weight": 1}]


def _canary(experiments: Experiments, name: str, **ramp: float) -> int:
    exp = experiments.create({"name": name, "scope": name, "arms": ARMS,
                              "canary": {"treatment": "t", "steps": [0.05, 0.25, 0.5], **ramp}})
    experiments.start(exp["id"])
    return int(exp["id"])


def _step(experiments: Experiments, exp: int, after_s: float) -> int:
    later = utcnow() + timedelta(seconds=after_s)
    return int(experiments.advance(exp, only_if_due=True, now=later)["canary"]["step"])


def test_a_paused_canary_arm_holds_its_step_and_restarts_it_on_resume(
        experiments: Experiments) -> None:
    exp = _canary(experiments, "held", advance_after_s=4)
    assert experiments.pause_arm(exp, "t", "guardrail")["weights"] == [1.0, 0.0]
    for after in (5, 9, 13):  # the router asks on every request
        assert _step(experiments, exp, after) == 0
    resumed = experiments.resume_arm(exp, "t")
    assert resumed["canary"]["step"] == 0 and resumed["weights"] == [0.95, 0.05]
    assert _step(experiments, exp, 2) == 0  # a fresh clock: 4 s from the resume
    assert _step(experiments, exp, 5) == 1


def test_a_paused_experiment_restarts_its_step_on_resume(
        db: Database, experiments: Experiments) -> None:
    exp = _canary(experiments, "whole", advance_after_s=4)
    experiments.pause(exp)
    assert _step(experiments, exp, 30) == 0
    with db.session() as s:  # paused for a minute
        row = s.get(Experiment, exp)
        assert row is not None
        aged = (utcnow() - timedelta(minutes=1)).isoformat()
        row.canary = {**row.canary, "step_started_at": aged}
    experiments.resume(exp)
    assert _step(experiments, exp, 2) == 0
    assert _step(experiments, exp, 5) == 1


def test_requests_before_a_pause_do_not_count_for_the_step_after_it(
        db: Database, experiments: Experiments) -> None:
    exp = _canary(experiments, "counted", advance_after_n=3)
    with db.session() as s:
        s.add_all([ServedPrediction(prediction_id=f"p{i}", experiment_id=exp, candidate="b",
                                    arm="t", latency_ms=5.0, error=False,
                                    created_at=utcnow()) for i in range(2)])
    experiments.pause_arm(exp, "t", "guardrail")
    experiments.resume_arm(exp, "t")
    with db.session() as s:
        s.add(ServedPrediction(prediction_id="p9", experiment_id=exp, candidate="b", arm="t",
                               latency_ms=5.0, error=False,
                               created_at=utcnow() + timedelta(seconds=1)))
    assert _step(experiments, exp, 2) == 0  # one request since the resume, not three


def test_a_step_given_a_time_and_a_request_count_waits_for_both(
        db: Database, experiments: Experiments) -> None:
    """With both, its time alone stepped the ramp: a canary that had served nobody went from 5 %
    to 50 % of the traffic in two steps' time."""
    exp = _canary(experiments, "both", advance_after_s=4, advance_after_n=3)
    assert _step(experiments, exp, 60) == 0  # its time, and no request

    with db.session() as s:
        s.add_all([ServedPrediction(prediction_id=f"p{i}", experiment_id=exp, candidate="b",
                                    arm="t", latency_ms=5.0, error=False,
                                    created_at=utcnow()) for i in range(3)])
    assert _step(experiments, exp, 2) == 0  # its requests, not its time
    assert _step(experiments, exp, 5) == 1


def test_an_operator_cannot_step_up_a_ramp_whose_treatment_gets_no_traffic(
        experiments: Experiments) -> None:
    """A kill (a guardrail's breach), a pause or the treatment arm's pause holds the ramp: a
    step taken by hand then would hand the treatment more traffic on resume, unseen."""
    exp = _canary(experiments, "by-hand")
    for hold, resume, said in (
            (experiments.kill, experiments.resume, "is killed"),
            (experiments.pause, experiments.resume, "is paused"),
            (lambda e: experiments.pause_arm(e, "t", "guardrail"),
             lambda e: experiments.resume_arm(e, "t"), "has its arm 't' paused")):
        hold(exp)
        with pytest.raises(Conflict, match=f"{said}: its canary holds its step.*resume it"):
            experiments.advance(exp)
        assert experiments.get(exp)["canary"]["step"] == 0
        resume(exp)
    assert experiments.advance(exp)["canary"]["step"] == 1
