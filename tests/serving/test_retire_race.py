"""Retiring a candidate from several callers at once: exactly one retires each version, the
others get what a later call gets (nothing retired), and the first time stays."""

from __future__ import annotations

from serving.registry import Registry
from tests.support.race import databases, race


def test_concurrent_retires_exactly_one_retires_the_time_stays(database_url: str) -> None:
    with databases(database_url, 3) as dbs:
        registry = Registry(dbs[0])
        for round_ in range(12):
            name = f"cand{round_}"
            registry.register(name, "1")
            registry.register(name, "2")
            version = "1" if round_ % 2 else None  # one version, or every active one
            results = race(dbs, [lambda db, n=name, v=version: Registry(db).retire(n, v)] * 3)
            assert not [r for r in results if isinstance(r, Exception)], (round_, results)
            won = [r for r in results if r]
            assert len(won) == 1, (round_, results)
            assert [r for r in results if not r] == [[], []]
            for info in won[0]:
                stored = registry.get(name, info.version).to_dict()["retired_at"]
                assert stored == info.to_dict()["retired_at"], (round_, info)
            assert sorted(i.version for i in won[0]) == (["1"] if version else ["1", "2"])
