"""Pausing arms and resuming them, in any order, gives every unit back the arm it had: a
resumed arm takes back the buckets its pause handed to control, not whichever control holds
highest (two arms paused and resumed in reverse order swapped all their units, so each unit
was counted, and served, in both treatments)."""

from __future__ import annotations

from typing import Any

import pytest

from serving.assignment import Allocation, Assigner
from serving.experiments import Experiments

UNITS = [f"user-{i}" for i in range(2000)]


def _arms_of(view: dict[str, Any]) -> list[str]:
    assigner = Assigner(Allocation.from_doc(view["allocation_table"]), view["salt"])
    names = [a["name"] for a in view["arms"]]
    return [names[assigner.assign(unit)] for unit in UNITS]


@pytest.mark.parametrize("order", [("a", "b", "a", "b"), ("a", "b", "b", "a")])
def test_arms_paused_and_resumed_in_any_order_keep_their_units(
        experiments: Experiments, order: tuple[str, ...]) -> None:
    arms = [{"name": "control", "candidate": "a", "weight": 1, "control": True},
            {"name": "a", "candidate": "b", "weight": 1},
            {"name": "b", "candidate": "b", "weight": 1}]
    exp = experiments.create({"name": "e", "scope": "e", "arms": arms, "salt": "fixed"})
    before = _arms_of(experiments.start(exp["id"]))
    experiments.pause_arm(exp["id"], order[0], "why")
    experiments.pause_arm(exp["id"], order[1], "why")
    experiments.resume_arm(exp["id"], order[2])
    after = _arms_of(experiments.resume_arm(exp["id"], order[3]))
    moved = sum(x != y for x, y in zip(before, after, strict=True))
    assert moved == 0, f"{moved} of {len(UNITS)} units changed arm"


def test_a_canary_step_while_an_arm_is_paused_leaves_that_arm_its_units(
        experiments: Experiments) -> None:
    arms = [{"name": "control", "candidate": "a", "weight": 5, "control": True},
            {"name": "canary", "candidate": "b", "weight": 3},
            {"name": "other", "candidate": "b", "weight": 2}]
    exp = experiments.create({"name": "c", "scope": "c", "arms": arms, "salt": "fixed",
                              "canary": {"treatment": "canary", "steps": [0.1, 0.3]}})
    before = _arms_of(experiments.start(exp["id"]))
    experiments.pause_arm(exp["id"], "other", "why")
    experiments.advance(exp["id"])
    after = _arms_of(experiments.resume_arm(exp["id"], "other"))
    # The step moves control units to the canary and nothing else: 'other' keeps its own.
    changed = {(x, y) for x, y in zip(before, after, strict=True) if x != y}
    assert changed == {("control", "canary")}
