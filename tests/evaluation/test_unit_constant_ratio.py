"""Every unit of an arm with the same value (the README's first session sends one formula image
again and again: every answer has the same confidence) has no variance per unit either. The
delta method's residual, a difference of sums, kept a few ulps of rounding: a variance of 1e-17,
so the comparison read p = 1e-73 with an interval of no width and a verdict, where the same data
counted per prediction said both arms have zero variance."""

from __future__ import annotations

from core.store.db import Database
from evaluation.results import experiment_results
from evaluation.unit_moments import Moments
from tests.evaluation.helpers import add_experiment, apply, prediction
from tests.evaluation.unit_data import comparison


def test_units_of_one_ratio_have_no_variance_whatever_the_rounding() -> None:
    # An arm's sums as the store grouped them: 11 units, one answer each at confidence 0.736688.
    sums = Moments(k=11.0, sx=11.0, sy=8.103568, sxx=11.0, syy=5.969801302784002,
                   sxy=8.103568)
    n, shift, _, squares = sums.stats()
    assert (n, squares) == (11.0, 0.0) and abs(shift - 0.736688) < 1e-12
    varied = Moments(k=3.0, sx=3.0, sy=2.1, sxx=3.0, syy=1.49, sxy=2.1)  # 0.6, 0.7, 0.8
    assert varied.stats()[3] > 0.01


def test_a_constant_metric_tested_per_unit_says_both_arms_have_no_variance(
        db: Database) -> None:
    exp = add_experiment(db)
    batch = [prediction(f"c{u}", arm="control", candidate="cand-a", unit_id=f"c{u}",
                        confidence=0.736688) for u in range(11)]
    # One unit sends twice: the built-in metrics are tested per unit.
    batch += [prediction(f"t{u}-{k}", arm="treatment", candidate="cand-b", unit_id=f"t{u}",
                         confidence=0.996959) for u in range(10) for k in range(2 if u else 1)]
    apply(db, batch)
    with db.session() as s:
        report = experiment_results(s, exp)
    assert "confidence" in report["analysis_unit"]["per_unit"]
    rec = comparison(report, "confidence")
    assert rec["analysis_unit"] == "unit"
    assert rec["p_value"] is None and rec["verdict"] != "better", rec
    assert "zero variance" in f"{rec['error']} {rec['note']}", rec
