"""One experiment per traffic scope, held by the store: concurrent starts, exactly one wins."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from core.errors import Conflict
from core.store.db import Database
from core.store.models import Experiment
from serving.experiments import Experiments
from tests.support.race import race

ARMS = [{"name": "control", "candidate": "a", "weight": 1, "control": True},
        {"name": "treatment", "candidate": "b", "weight": 1}]


def _race(experiments: Experiments, ids: list[int]) -> list[object]:
    """Start every id at the same moment from its own thread; each result or error."""
    return race([experiments.db] * len(ids),
                [lambda _db, i=i: experiments.start(i)["status"] for i in ids])


def test_concurrent_starts_on_one_scope_exactly_one_wins(experiments: Experiments) -> None:
    for round_ in range(6):
        ids = [experiments.create({"name": f"r{round_}-{i}", "scope": f"s{round_}",
                                   "arms": ARMS})["id"] for i in range(3)]
        results = _race(experiments, ids)
        assert results.count("running") == 1, results
        losers = [r for r in results if r != "running"]
        assert all(isinstance(r, Conflict) and r.status == 409 for r in losers), results
        running = experiments.list("running")
        assert [e["id"] for e in running if e["scope"] == f"s{round_}"] == [
            ids[results.index("running")]]


def test_the_store_refuses_a_second_active_experiment_on_a_scope(
    experiments: Experiments, db: Database
) -> None:
    first = experiments.create({"name": "one", "scope": "x", "arms": ARMS})["id"]
    second = experiments.create({"name": "two", "scope": "x", "arms": ARMS})["id"]
    experiments.start(first)
    # Past every check in Python: the index itself refuses it.
    for status in ("running", "paused", "killed"):
        with pytest.raises(IntegrityError), db.session() as s:
            s.execute(update(Experiment).where(Experiment.id == second).values(status=status))
    experiments.stop(first)
    assert experiments.start(second)["status"] == "running"
    # Stopped and draft experiments on the scope do not count.
    assert experiments.create({"name": "three", "scope": "x", "arms": ARMS})["status"] == "draft"
