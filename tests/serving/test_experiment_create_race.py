"""Creates of one experiment name at once: one is made, the others get the 409 a later create
gets, never the store's unique-name error."""

from __future__ import annotations

from core.errors import Conflict
from serving.experiments import Experiments
from serving.registry import Registry
from tests.support.race import databases, race

ARMS = [{"name": "control", "candidate": "a", "weight": 1, "control": True},
        {"name": "treatment", "candidate": "b", "weight": 1}]


def test_concurrent_creates_of_one_name_one_wins_the_others_409(database_url: str) -> None:
    with databases(database_url, 3) as dbs:
        Registry(dbs[0]).register("a", "1")
        Registry(dbs[0]).register("b", "1")
        for round_ in range(12):
            spec = {"name": f"dup{round_}", "scope": f"sc{round_}", "arms": ARMS}
            results = race(dbs, [lambda db, sp=spec: Experiments(db).create(sp)] * 3)
            made = [r for r in results if isinstance(r, dict)]
            assert len(made) == 1, (round_, results)
            losers = [r for r in results if not isinstance(r, dict)]
            assert all(isinstance(r, Conflict) and r.status == 409 and
                       "exists already" in str(r) for r in losers), (round_, results)
            assert [e["id"] for e in Experiments(dbs[0]).list()
                    if e["name"] == spec["name"]] == [made[0]["id"]]
