"""Messages about experiments, arms and scopes print their names as typed, between plain
quotes (:func:`core.text.quoted`): Python's repr printed an apostrophe in a name as ``\\'``,
doubled a backslash and switched to double quotes, so a message named something its owner
never typed and could not search for."""

from __future__ import annotations

import pytest

from core.errors import AbvocError
from serving.experiments import Experiments
from serving.router import Router

CONTROL, TREATMENT = "ctl's", "it's"
ARMS = [{"name": CONTROL, "candidate": "a", "weight": 1, "control": True},
        {"name": TREATMENT, "candidate": "b", "weight": 1}]
NAME, SCOPE = 'Bob\'s "test" \\ one', "o'clock"


def _said(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(AbvocError) as raised:
        call(*args, **kwargs)  # type: ignore[operator]
    return str(raised.value)


def test_experiment_arm_and_scope_names_are_quoted_as_typed(experiments: Experiments) -> None:
    twice = [ARMS[0], {**ARMS[1], "name": CONTROL}]
    assert "arm name 'ctl's' is used twice" in _said(
        experiments.create, {"name": "x", "scope": "x", "arms": twice})
    first = experiments.create({"name": NAME, "scope": SCOPE, "arms": ARMS,
                                "canary": {"treatment": TREATMENT, "steps": [0.1, 0.5]}})
    experiments.start(first["id"])
    assert f"an experiment named '{NAME}' exists already" in _said(
        experiments.create, {"name": NAME, "scope": "y", "arms": ARMS})
    second = experiments.create({"name": "second", "scope": SCOPE, "arms": ARMS})
    assert f"scope 'o'clock' is owned by running experiment '{NAME}'; stop it first" in _said(
        experiments.start, second["id"])
    assert "'ctl's' is the control arm" in _said(experiments.pause_arm, first["id"], CONTROL,
                                                "by hand")
    assert "its arms are 'ctl's', 'it's'" in _said(experiments.pause_arm, first["id"], "nope",
                                                   "by hand")
    experiments.pause_arm(first["id"], TREATMENT, "by hand")
    assert "has its arm 'it's' paused" in _said(experiments.advance, first["id"])


def test_a_forced_arm_the_experiment_lacks_is_named_with_the_arms_it_has(
        experiments: Experiments) -> None:
    exp = experiments.create({"name": "forced", "scope": "forced", "arms": ARMS})
    experiments.start(exp["id"])
    said = _said(Router(experiments).route, "forced", "u1", lambda: "a", force_arm="nope")
    assert said == (f"arm 'nope' is not in experiment {exp['id']}; its arms are 'ctl's', "
                    "'it's'")
