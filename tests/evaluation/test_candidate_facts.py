"""Evaluation reads a candidate's output type and offline results from the version the
experiment pinned, not from whichever version of the name was registered last."""

from __future__ import annotations

from core.store.db import Database
from core.store.models import Experiment
from evaluation.candidate_facts import candidate_facts, pinned_versions
from serving.experiments import Experiments
from serving.registry import Registry

IRIS = ["setosa", "versicolor", "virginica"]


def _label(classes: list[str]) -> dict:
    return {"kind": "bundle", "output": {"type": "label", "classes": classes}}


def test_facts_come_from_the_pinned_version(db: Database) -> None:
    registry = Registry(db)
    registry.register("control", "1", pipeline=_label(IRIS))
    registry.register("flowers", "1", pipeline=_label(IRIS))
    registry.set_offline_results("flowers", "1", {"overall": {"n": 10, "accuracy": 0.9}})
    created = Experiments(db).create({"name": "e", "arms": [
        {"name": "control", "candidate": "control", "weight": 1, "control": True},
        {"name": "treat", "candidate": "flowers", "weight": 1}]})
    # Registered after the experiment pinned version 1: other classes, no offline results.
    registry.register("flowers", "2", pipeline=_label(["alpha", "beta"]))
    with db.reading() as s:
        experiment = s.get(Experiment, created["id"])
        assert experiment is not None
        pinned = pinned_versions(experiment)
        assert pinned == {"control": "1", "flowers": "1"}
        facts = candidate_facts(s, ["flowers", "control"], pinned)
        newest = candidate_facts(s, ["flowers"])
    assert facts["flowers"].kind.classes == tuple(IRIS)
    assert facts["flowers"].offline["overall"]["accuracy"] == 0.9
    assert newest["flowers"].kind.classes == ("alpha", "beta") and not newest["flowers"].offline
