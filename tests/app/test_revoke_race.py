"""Revoking one API key from several callers at once: exactly one revokes it, the others are
told it already was, at the time the first set, and that time stays."""

from __future__ import annotations

from app.auth import create_key, list_keys, revoke_key
from tests.support.race import databases, race


def test_concurrent_revokes_exactly_one_revokes_the_time_stays(database_url: str) -> None:
    with databases(database_url, 3) as dbs:
        for round_ in range(15):
            prefix = create_key(dbs[0], ["predict"], name=f"k{round_}")["prefix"]
            results = race(dbs, [lambda db, p=prefix: revoke_key(db, p)] * 3)
            assert not [r for r in results if isinstance(r, Exception)], (round_, results)
            assert sorted(r["already"] for r in results) == [False, True, True], results
            stored = next(k for k in list_keys(dbs[0]) if k["prefix"] == prefix)["revoked_at"]
            assert {r["revoked_at"] for r in results} == {stored}, (results, stored)
