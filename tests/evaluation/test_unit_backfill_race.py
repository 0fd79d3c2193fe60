"""Two `abvoc db backfill-unit-sums` of one experiment at once: they take turns, so the second
cannot add its rebuilt sums on top of the first's."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from core.store.outcome_models import UnitSums
from evaluation.unit_backfill import rebuild, stale_experiments
from evaluation.unit_moments import load_moments
from tests.evaluation.helpers import add_experiment, apply
from tests.evaluation.test_unit_analysis import clustered
from tests.support.race import databases, race


def test_overlapping_rebuilds_of_one_experiment_give_the_sums_once(database_url: str) -> None:
    with databases(database_url, 2) as dbs:
        db = dbs[0]
        exp = add_experiment(db)
        batch, _ = clustered(seed=3, units=40, experiment_id=exp)
        apply(db, batch)
        with db.session() as s:
            kept = load_moments(s, exp)
        for round_ in range(3):
            with db.session() as s:
                s.execute(delete(UnitSums).where(UnitSums.experiment_id == exp))
            results = race(dbs, [lambda d: rebuild(d, exp)] * 2)
            assert not [r for r in results if isinstance(r, Exception)], results
            with db.session() as s:
                got = load_moments(s, exp)
                assert stale_experiments(s) == [], round_
            assert got.keys() == kept.keys()
            for key, moments in kept.items():
                assert got[key] == pytest.approx(moments, rel=1e-12), (round_, key)
