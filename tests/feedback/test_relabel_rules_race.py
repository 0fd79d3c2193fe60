"""Two admins setting the relabel rules at once: each change applies on top of the other, and
the first rules of a new scope never fail on its primary key."""

from __future__ import annotations

from feedback.relabel_rules import effective, put
from serving.registry import Registry
from tests.support.race import databases, race


def test_concurrent_puts_on_one_scope_keep_both_changes(database_url: str) -> None:
    with databases(database_url, 2) as dbs:
        for round_ in range(16):
            audit, share = round(0.01 + round_ / 1000, 4), round(0.2 + round_ / 100, 4)
            # Even rounds: a scope with no rules yet; odd rounds: the default scope's row.
            scope = {"candidate": f"c{round_}"} if round_ % 2 == 0 else {}
            if scope:
                Registry(dbs[0]).register(scope["candidate"], "1")
            results = race(dbs, [
                lambda db, a=audit, sc=scope: put(db, {"audit_rate": a}, **sc),
                lambda db, sh=share, sc=scope: put(db, {"second_annotator_share": sh}, **sc),
            ])
            assert not [r for r in results if isinstance(r, Exception)], (round_, results)
            rules = effective(dbs[0], **scope)["rules"]
            assert (rules["audit_rate"], rules["second_annotator_share"]) == (audit, share), \
                (round_, scope, rules)
