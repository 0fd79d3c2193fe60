"""Divergence statistics against statsmodels and scipy, and the mix-vs-drop decomposition."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.proportion import test_proportions_2indep as sm_two_proportions

from core.store.db import Database
from evaluation.divergence import divergence_report, homogeneity, mcnemar, non_inferiority, psi
from evaluation.stats.small_samples import wilson_interval
from tests.evaluation.helpers import add_candidate, add_experiment, apply, correction, prediction


def test_non_inferiority_matches_statsmodels_score() -> None:
    for online, offline, tolerance in (((812, 1000), (516, 600), 0.02),
                                       ((170, 200), (890, 1000), 0.0),
                                       ((0, 40), (54, 60), 0.05)):
        z, p = non_inferiority(*online, offline[0] / offline[1], offline[1], tolerance)
        ref = sm_two_proportions(*online, *offline, value=-tolerance, method="score",
                                 compare="diff", alternative="smaller")
        assert z == pytest.approx(ref.statistic, rel=1e-9)
        assert p == pytest.approx(ref.pvalue, rel=1e-9)


def test_a_few_predictions_cannot_make_a_gap_significant() -> None:
    """One wrong answer against 90 % offline: Wald's variance vanishes at a rate of 0 (its p
    is 5e-107); the score test's p (0.011) would still flag it, and two of four right too. The
    exact binomial tail of the online count at the null's edge is the floor (scipy's)."""
    wald = sm_two_proportions(0, 1, 54, 60, value=-0.05, method="wald", compare="diff",
                              alternative="smaller")
    assert wald.pvalue < 1e-100
    _, p = non_inferiority(0, 1, 0.9, 60, 0.05)
    assert p == pytest.approx(stats.binom.cdf(0, 1, 0.85), rel=1e-12) == pytest.approx(0.15)
    score = sm_two_proportions(2, 4, 54, 60, value=-0.05, method="score", compare="diff",
                               alternative="smaller")
    _, p = non_inferiority(2, 4, 0.9, 60, 0.05)
    assert score.pvalue < 0.05 < p == pytest.approx(stats.binom.cdf(2, 4, 0.85), rel=1e-12)
    # Twenty wrong answers do: the floor is far below alpha, the score test's p is the figure.
    _, p = non_inferiority(0, 20, 0.9, 60, 0.05)
    assert p < 1e-10 and p == pytest.approx(sm_two_proportions(
        0, 20, 54, 60, value=-0.05, method="score", compare="diff",
        alternative="smaller").pvalue, rel=1e-9)
    assert non_inferiority(20, 20, 0.9, 60, 0.05)[1] == 1.0


def test_wilson_interval_matches_statsmodels() -> None:
    low, high = wilson_interval(37, 250)
    assert (low, high) == pytest.approx(proportion_confint(37, 250, method="wilson"), rel=1e-9)
    # At the ends the interval holds its estimate exactly (the formula alone leaves ~1e-17).
    for successes, n in ((0, 63), (0, 7), (63, 63), (1, 3)):
        low, high = wilson_interval(successes, n)
        assert 0.0 <= low <= successes / n <= high <= 1.0
        assert (low, high) == pytest.approx(proportion_confint(successes, n, method="wilson"),
                                            abs=1e-12)


def test_mcnemar_matches_statsmodels() -> None:
    ref = sm_mcnemar([[500, 42], [17, 300]], exact=False, correction=True)
    assert mcnemar(42, 17) == pytest.approx(ref.pvalue, rel=1e-9)


def test_homogeneity_and_psi() -> None:
    off, on = np.array([300, 150, 50]), np.array([100, 200, 200])
    chi2, p, note = homogeneity(off, on)
    assert note is None
    ref = stats.chi2_contingency(np.vstack([off, on]), correction=False)
    assert (chi2, p) == pytest.approx((ref.statistic, ref.pvalue))
    # PSI by its definition, shares 0.6/0.3/0.1 against 0.2/0.4/0.4.
    expected = sum((q - e) * np.log(q / e) for e, q in ((0.6, 0.2), (0.3, 0.4), (0.1, 0.4)))
    assert psi(off, on) == pytest.approx(expected)
    assert psi(off, off * 3) == pytest.approx(0.0)


def test_a_few_answers_of_one_class_are_not_a_shift() -> None:
    """Three answers, all of one of three equally likely classes: Pearson's chi-square says
    p = 0.05 against known shares, the exact multinomial test 3/27 = 0.11 (every outcome as
    unlikely: all three of one class). Under Koehler and Larntz's rule (10 counts, n^2/K >= 10)
    neither the prediction shift nor a traffic mix is judged; thirty such answers are, and so
    is a skewed distribution whose rare classes expect under 5 online counts."""
    from evaluation.label_metrics import prediction_shift

    assert stats.chisquare([3, 0, 0]).pvalue == pytest.approx(0.0498, abs=1e-4)
    uniform = {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
    few = prediction_shift({"a": 3}, uniform, 60_000, ["a", "b", "c"])
    assert few["p_value"] < 0.05 and not few["shifted"]
    assert few["note"].startswith("too few online counts for the chi-square test: 3 over 3")
    many = prediction_shift({"a": 30}, uniform, 60_000, ["a", "b", "c"])
    assert many["shifted"] and many["note"] is None
    skewed = {"idle": 0.9, **{f"act{i}": 0.1 / 8 for i in range(8)}}
    idle = prediction_shift({"idle": 196, "act0": 4}, skewed, 10_000, list(skewed))
    assert idle["shifted"] and idle["note"] is None  # its rare classes expect 2.5 each
    assert homogeneity(np.array([200, 200, 200]), np.array([3, 0, 0]))[2] is not None
    assert homogeneity(np.array([200, 200, 200]), np.array([30, 0, 0]))[2] is None


def test_mix_shift_is_told_apart_from_drops_within_slices(db: Database) -> None:
    """Offline: 80% printed (acc .95), 20% handwritten (acc .70). Online the accuracies per
    slice hold but the mix flips to 20/80: the whole drop is the mix, none within slices."""
    add_candidate(db, "ocr", {
        "overall": {"n": 1000, "exact_match": 0.9},
        "slices": {"printed/middle": {"n": 800, "exact_match": 0.95},
                   "handwritten/middle": {"n": 200, "exact_match": 0.70},
                   "noise/noisy": {"n": 100, "exact_match": 0.5}},
    })
    exp = add_experiment(db, arms=[
        {"name": "control", "candidate": "ocr", "weight": 1.0, "control": True}])
    batch = []
    for slice_, n, wrong in (("printed/middle", 400, 20), ("handwritten/middle", 1600, 480)):
        for i in range(n):
            pid = f"{slice_}-{i}"
            batch.append(prediction(pid, experiment_id=exp, candidate="ocr", slice_=slice_,
                                    stages={"converter": {}}))
            if i < wrong:
                batch.append(correction(pid, "y"))
    apply(db, batch)
    with db.session() as s:
        report = divergence_report(s, exp)
    mix = report["traffic_mix"][0]
    assert "noise/noisy" not in mix["slices"]  # an overlapping offline grouping stays out
    assert mix["shifted"] and mix["psi"] > 0.25
    d = mix["decomposition"]
    assert d["within_slices"] == pytest.approx(0.0, abs=1e-12)
    assert d["mix_effect"] == pytest.approx(0.2 * 0.95 + 0.8 * 0.70 - (0.8 * 0.95 + 0.2 * 0.70))
    assert d["online"] - d["offline"] == pytest.approx(d["mix_effect"] + d["within_slices"])
    top = report["findings"][0]
    assert top["kind"] == "traffic_mix" and top["slice"] == "handwritten/middle"
    by_slice = {r["slice"]: r for r in report["slices"]}
    assert not by_slice["printed/middle"]["flagged"]
    assert not by_slice["handwritten/middle"]["flagged"]
    assert by_slice["all"]["flagged"]  # overall it is worse than its offline figure
