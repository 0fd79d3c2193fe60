"""An experiment started since the router last loaded (by another process, a moment ago) owns
its scope at once: a request that would be refused for want of one looks again first, so the
first requests of a new experiment neither fail nor go outside it."""

from __future__ import annotations

import pytest

from core.errors import NotFound
from serving.experiments import Experiments
from serving.router import Router

ARMS = [{"name": "control", "candidate": "a", "weight": 1, "control": True},
        {"name": "treatment", "candidate": "b", "weight": 1}]


def _nobody() -> str:
    raise NotFound("no experiment runs in scope 'league' and no candidate is named 'league'")


def test_a_scope_started_since_the_last_load_is_routed_to_its_experiment(
        experiments: Experiments) -> None:
    router = Router(experiments, refresh_s=3600.0)  # loads once, then not for an hour
    with pytest.raises(NotFound):
        router.route("league", "u1", _nobody)
    exp = experiments.create({"name": "league", "scope": "league", "arms": ARMS})
    experiments.start(exp["id"])
    route = router.route("league", "u1", _nobody)
    assert route.experiment_id == exp["id"] and route.arm in ("control", "treatment")
    forced = router.route("league", "u2", _nobody, force_arm="treatment")
    assert forced.arm == "treatment"
    assert router.experiment("league")["id"] == exp["id"]
    # A scope nobody serves is still refused, after that one look.
    with pytest.raises(NotFound):
        router.route("nobody", "u1", _nobody)
