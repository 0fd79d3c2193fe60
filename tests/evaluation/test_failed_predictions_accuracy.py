"""A failed prediction is not a right answer: the accuracy bound and the divergence's online
count hold it as a miss (a candidate that fails more looked more accurate when failures counted
as right), once, even where its input was later corrected; the per-unit analysis agrees."""

from __future__ import annotations

import pytest

from core.store.db import Database
from evaluation.divergence import divergence_report
from evaluation.online import ALL
from evaluation.results import experiment_results
from tests.evaluation.helpers import add_candidate, add_experiment, apply, correction, prediction


def _arm(prefix: str, arm: str, candidate: str, served: int, failed: int, wrong: int,
         units: int = 1) -> list[dict]:
    """`served` answers (`wrong` of them corrected to another answer) and `failed` failures,
    spread over `units` units; one failure is corrected too (a customer saying what it
    should have been)."""
    batch = []
    for i in range(served):
        pid = f"{prefix}-ok-{i}"
        batch.append(prediction(pid, arm=arm, candidate=candidate, unit_id=f"{arm}-{i % units}"))
        if i < wrong:
            batch.append(correction(pid, "y^{2}"))
    for i in range(failed):
        pid = f"{prefix}-failed-{i}"
        batch.append(prediction(pid, arm=arm, candidate=candidate, output="",
                                unit_id=f"{arm}-{i % units}", error="remote answered 503"))
        if i == 0:
            batch.append(correction(pid, "x^{2}"))
    return batch


def test_failures_count_as_misses_once_in_the_accuracy_bound(db: Database) -> None:
    exp = add_experiment(db)
    apply(db, _arm("c", "control", "cand-a", served=40, failed=0, wrong=4)
          + _arm("t", "treatment", "cand-b", served=20, failed=20, wrong=1))
    with db.session() as s:
        metrics = experiment_results(s, exp)["metrics"]
    control, treatment = metrics["control"][ALL], metrics["treatment"][ALL]
    assert control["accuracy_bound"] == pytest.approx(1 - 4 / 40)
    # 20 failures and 1 answer known wrong among 40: 19 right at most, not 39. The corrected
    # failure is counted once (a failure), and its correction still counts as one made.
    assert treatment["errors"] == 20 and treatment["known_wrong"] == 1
    assert treatment["accuracy_bound"] == pytest.approx(19 / 40)
    assert treatment["corrections"] == 2 and treatment["truth_known"] == 1


def test_the_divergence_holds_a_failing_candidate_below_its_offline_accuracy(
        db: Database) -> None:
    exp = add_experiment(db)
    add_candidate(db, "cand-a", {"overall": {"n": 2000, "exact_match": 0.9}})
    add_candidate(db, "cand-b", {"overall": {"n": 2000, "exact_match": 0.9}})
    apply(db, _arm("c", "control", "cand-a", served=60, failed=0, wrong=3, units=60)
          + _arm("t", "treatment", "cand-b", served=30, failed=30, wrong=0, units=60))
    with db.session() as s:
        report = divergence_report(s, exp, tolerance=0.02)
    rows = {r["candidate"]: r for r in report["slices"] if r["slice"] == ALL}
    assert rows["cand-a"]["online"]["accuracy_bound"] == pytest.approx(57 / 60)
    failing = rows["cand-b"]
    assert failing["online"]["accuracy_bound"] == pytest.approx(0.5)
    assert failing["gap"] == pytest.approx(0.5 - 0.9) and failing["flagged"]
    assert failing["online"]["accuracy_ci"][1] < 0.9


def test_a_failure_corrected_in_a_later_batch_counts_as_in_the_same_one(db: Database) -> None:
    """The worker reads a stored prediction back to count a late correction: it must still
    know the prediction failed (else the failure is a miss twice: an error and a wrong truth)."""
    exp = add_experiment(db)
    batch = _arm("t", "treatment", "cand-b", served=20, failed=20, wrong=1)
    apply(db, [e for e in batch if "correction_id" not in e])
    apply(db, [e for e in batch if "correction_id" in e])
    with db.session() as s:
        treatment = experiment_results(s, exp)["metrics"]["treatment"][ALL]
    assert treatment["errors"] == 20 and treatment["known_wrong"] == 1
    assert treatment["accuracy_bound"] == pytest.approx(19 / 40)
