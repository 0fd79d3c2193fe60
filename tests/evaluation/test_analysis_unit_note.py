"""The results say when the built-in metrics' tests count predictions rather than units: units
that send several requests each make those tests too optimistic."""

from __future__ import annotations

from core.store.db import Database
from evaluation.results import experiment_results
from tests.evaluation.helpers import add_experiment, apply, prediction


def _traffic(db: Database, per_unit: int) -> dict:
    exp = add_experiment(db)
    apply(db, [prediction(f"{arm}-{u}-{k}", arm=arm, candidate=cand, unit_id=f"{arm}-{u}")
               for arm, cand in (("control", "cand-a"), ("treatment", "cand-b"))
               for u in range(6) for k in range(per_unit)])
    with db.session() as s:
        return experiment_results(s, exp)


def test_one_request_per_unit_needs_no_note(db: Database) -> None:
    assert _traffic(db, 1)["analysis_unit_note"] is None


def test_several_requests_per_unit_are_named(db: Database) -> None:
    report = _traffic(db, 4)
    assert report["metrics"]["control"]["all"]["predictions"] == 24
    assert report["metrics"]["control"]["all"]["units"] == 6
    assert report["analysis_unit_note"].startswith("units sent up to 4.0 predictions each")
    assert "outcome metrics are per unit" in report["analysis_unit_note"]
