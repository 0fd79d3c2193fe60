"""VOC search finds text with non-ASCII capitals in either case, on SQLite too (whose own
``lower()`` folds ASCII letters only), as it does on PostgreSQL."""

from __future__ import annotations

import pytest

from core.store.db import Database
from dashboards import feeds
from tests.evaluation.helpers import add_experiment, apply, correction, prediction

COMMENTS = {"p-1": "ÜBER Straße ÑANDÚ Ωmega", "p-2": "ПРИВЕТ мир", "p-3": "plain SETOSA"}


@pytest.mark.parametrize(("query", "found"), [
    ("ÜBER", 1), ("über", 1), ("Über", 1), ("ñandú", 1), ("ÑANDÚ", 1), ("ωmega", 1),
    ("привет", 1), ("ПРИВЕТ", 1), ("straße", 1), ("STRAßE", 1), ("setosa", 1), ("SETOSA", 1),
    ("мир", 1), ("nothing", 0)])
def test_search_folds_both_sides_the_same_way(db: Database, query: str, found: int) -> None:
    exp = add_experiment(db)
    batch = []
    for pid, comment in COMMENTS.items():
        batch.append(prediction(pid, experiment_id=exp, unit_id=f"u-{pid}"))
        fix = correction(pid, "y")
        fix["comment"] = comment
        batch.append(fix)
    apply(db, batch)
    page = feeds.feed(db, query, ("correction",))
    assert page.total == found, (query, [r["comment"] for r in page.rows])
    if found:
        assert query.lower() in page.rows[0]["comment"].lower()
