"""A store written before number answers were bounded at 2^53: a number candidate there may have
answered 1e300, and its error's square overflowed the sums (infinity), after which every figure
of the metric was NaN and the results refused to be computed. Such answers are not judged by
their error now, and sums that are already infinite read as no data, not as a failure."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import select, update

from core import output_types
from core.store.db import Database
from core.store.models import Candidate, OnlineAggregate
from core.store.outcome_models import UnitSums
from evaluation.divergence import divergence_report
from evaluation.results import experiment_results
from evaluation.unit_backfill import rebuild
from tests.evaluation.helpers import T0, add_experiment, apply
from tests.evaluation.test_typed_comparisons import typed_correction, typed_prediction

OFFLINE = {"output_type": "number", "overall": {"n": 10, "mae": 1.0, "rmse": 2.0}}


def numbers(db: Database, monkeypatch: pytest.MonkeyPatch) -> int:
    """Two arms of a number candidate; two of the control's answers are beyond 2^53, accepted
    as the older release accepted them."""
    monkeypatch.setattr(output_types, "MAX_NUMBER", 1e308)
    with db.session() as s:
        for name in ("cand-a", "cand-b"):
            s.add(Candidate(name=name, version="1", pipeline={"output": {"type": "number"}},
                            offline_results=OFFLINE, created_at=T0, updated_at=T0))
    exp = add_experiment(db)
    answers = [1e300, -1e300, 5.0, 7.0, 2.0, 3.0, 4.0, 6.0, 2**60, 8.0]
    apply(db, [typed_prediction(f"p{i}", v, "number", "control" if i % 2 == 0 else "treatment")
               for i, v in enumerate(answers)])
    apply(db, [typed_correction(f"p{i}", t, "number")
               for i, t in enumerate([-1e300, 1e300, 4.0, 2.0, 3.0, 3.0, 4.0, 5.0, 3.0, 9.0])])
    return exp


def test_answers_beyond_the_bound_are_not_judged_by_their_error(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = numbers(db, monkeypatch)
    with db.session() as s:
        figures = experiment_results(s, exp)["metrics"]
    # control: 5-4, 2-3, 4-4 judged (1e300 and 2^60 are not); treatment: 7-2, 3-3, 6-5, 8-9
    assert figures["control"]["all"]["numbers_corrected"] == 3
    assert figures["control"]["all"]["mae"] == pytest.approx(2 / 3)
    assert figures["treatment"]["all"]["mae"] == pytest.approx(7 / 4)


def test_overflowing_sums_already_stored_read_as_no_data_until_rebuilt(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = numbers(db, monkeypatch)
    with db.session() as s:  # what the older worker wrote for the control's errors
        s.execute(update(OnlineAggregate).where(
            OnlineAggregate.arm == "control",
            OnlineAggregate.metric.in_(("absolute_error", "squared_error")))
            .values(sum=math.inf, sum_squares=math.inf))
        s.execute(update(UnitSums).where(UnitSums.unit_id == "u-p0")
                  .values(abs_sum=2e300, sq_sum=math.inf))  # PostgreSQL's products overflow
    with db.session() as s:
        res = experiment_results(s, exp)
        report = divergence_report(s, exp)
    assert "mae" not in res["metrics"]["control"]["all"]
    assert res["metrics"]["treatment"]["all"]["mae"] == pytest.approx(7 / 4)
    gaps = {r["candidate"]: r["mae_gap"] for r in report["slices"] if r["slice"] == "all"}
    assert gaps["cand-a"] is None and gaps["cand-b"]["online_mae"] == pytest.approx(7 / 4)
    rebuild(db, exp)  # `abvoc db backfill-unit-sums`: the unit sums as the worker keeps them now
    with db.session() as s:
        unit = s.scalars(select(UnitSums).where(UnitSums.unit_id == "u-p0")).one()
        assert (unit.abs_sum, unit.sq_sum) == (0.0, 0.0)
        assert "mae" in experiment_results(s, exp)["metrics"]["treatment"]["all"]
