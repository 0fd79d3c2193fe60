"""Steering an experiment: arms and canary steps only while it owns its scope, pinned versions
still active at start, the reason and weights the view gives, and what a canary step counts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from core.errors import AbvocError, Conflict
from core.store.db import Database, utcnow
from core.store.models import ServedPrediction
from serving.experiments import Experiments
from serving.registry import Registry


def _arms(treatment: str = "treat") -> list[dict[str, Any]]:
    return [{"name": "control", "candidate": "a", "weight": 1, "control": True},
            {"name": treatment, "candidate": "b", "weight": 1},
            {"name": "other", "candidate": "b", "weight": 1}]


def _create(experiments: Experiments, name: str = "e", **spec: Any) -> int:
    return experiments.create({"name": name, "scope": name, "arms": _arms(), **spec})["id"]


def test_arms_and_canary_are_steered_only_while_the_experiment_owns_its_scope(
        experiments: Experiments) -> None:
    draft = _create(experiments, canary={"treatment": "treat", "steps": [0.1, 0.3]})
    for steer in (lambda: experiments.pause_arm(draft, "treat", "why"),
                  lambda: experiments.resume_arm(draft, "treat"),
                  lambda: experiments.advance(draft)):
        with pytest.raises(Conflict, match="is draft"):
            steer()
    assert experiments.get(draft)["canary"]["step"] == 0
    experiments.start(draft)
    assert experiments.advance(draft)["canary"]["step"] == 1
    assert experiments.pause_arm(draft, "other", "guardrail")["arms"][2]["paused"]
    experiments.stop(draft)
    for steer in (lambda: experiments.pause_arm(draft, "treat", "why"),
                  lambda: experiments.resume_arm(draft, "other")):
        with pytest.raises(Conflict, match="is stopped"):
            steer()
    assert experiments.advance(draft, only_if_due=True)["status"] == "stopped"


def test_a_version_retired_after_creation_cannot_start(db: Database,
                                                       experiments: Experiments) -> None:
    draft = _create(experiments)
    Registry(db).retire("b", "1")
    with pytest.raises(Conflict, match="'b' version '1'.*retired"):
        experiments.start(draft)
    assert experiments.get(draft)["status"] == "draft"


def test_the_reason_and_weights_say_what_traffic_does_now(experiments: Experiments) -> None:
    first = _create(experiments)
    experiments.start(first)
    assert experiments.pause_arm(first, "treat", "error rate 12%")["status_reason"] \
        == "arm 'treat' paused: error rate 12%"
    paused = experiments.pause(first)
    assert paused["status_reason"] == "paused by an operator"
    assert paused["weights"] == [1.0, 0.0, 0.0]  # a paused experiment sends all to control
    resumed = experiments.resume(first)
    # The arm is still paused after the experiment resumes: its reason is kept.
    assert resumed["status_reason"] == "arm 'treat' paused: error rate 12%"
    assert resumed["weights"] == [0.666667, 0.0, 0.333333]  # its share went to control
    assert experiments.resume_arm(first, "treat")["status_reason"] == ""
    killed = experiments.kill(first)
    assert killed["weights"] == [1.0, 0.0, 0.0] and killed["status_reason"] == "kill switch"
    second = _create(experiments, "f")
    experiments.stop(first)
    experiments.start(second)
    third = experiments.create({"name": "g", "scope": "f", "arms": _arms()})["id"]
    experiments.kill(second)
    with pytest.raises(Conflict, match="owned by killed experiment 'f'"):
        experiments.start(third)


def test_an_arm_name_with_a_slash_is_refused(experiments: Experiments) -> None:
    with pytest.raises(AbvocError, match="must not contain '/'") as refused:
        experiments.create({"name": "s", "scope": "s", "arms": _arms("x/y")})
    assert refused.value.status == 400


def test_a_canary_step_counts_only_the_treatment_arms_routed_requests(
        db: Database, experiments: Experiments) -> None:
    exp = _create(experiments, canary={"treatment": "treat", "steps": [0.1, 0.3],
                                       "advance_after_n": 3})
    experiments.start(exp)
    now = utcnow() + timedelta(seconds=1)

    def served(i: int, arm: str | None, latency: float | None) -> ServedPrediction:
        return ServedPrediction(prediction_id=f"p-{arm}-{latency}-{i}", experiment_id=exp,
                                candidate="b", created_at=now, arm=arm, latency_ms=latency,
                                error=None if latency is None else False)

    with db.session() as s:  # forced QA requests, shadow copies, the other arm on "b"
        s.add_all([served(i, "treat", None) for i in range(3)]
                  + [served(i, None, None) for i in range(3)]
                  + [served(i, "other", 5.0) for i in range(3)])
    later = now + timedelta(seconds=1)
    assert experiments.advance(exp, only_if_due=True, now=later)["canary"]["step"] == 0
    with db.session() as s:
        s.add_all([served(i, "treat", 5.0) for i in range(3)])
    assert experiments.advance(exp, only_if_due=True, now=later)["canary"]["step"] == 1


def test_every_change_of_status_or_reason_is_dated(db: Database,
                                                  experiments: Experiments) -> None:
    """A kill, a pause and an arm's pause keep when they happened (the operations page dated
    them "–" before): `status_since` moves with each change and only then."""
    from dashboards import operations  # the page that lists them, read from the same store

    def since(view: dict[str, Any]) -> str:
        return view["status_since"]

    exp = _create(experiments)
    created = since(experiments.get(exp))
    assert created == experiments.get(exp)["created_at"]
    marks = [created]
    for step in (lambda: experiments.start(exp),
                 lambda: experiments.pause_arm(exp, "treat", "error rate 12%"),
                 lambda: experiments.kill(exp, "kill switch: error spike"),
                 lambda: experiments.resume(exp),
                 lambda: experiments.resume_arm(exp, "treat"),
                 lambda: experiments.pause(exp)):
        marks.append(since(step()))
        assert marks[-1] > marks[-2], marks
    # Nothing changed: the same pause again leaves the time as it was.
    assert since(experiments.pause_arm(exp, "other", "x")) == marks[-1]
    events = {e["status"]: e["at"] for e in operations.guardrail_events(db)}
    assert events["paused"] is not None and events["paused"].isoformat() == marks[-1]
    stopped = experiments.stop(exp)
    assert since(stopped) == stopped["stopped_at"] > marks[-1]
