"""Mann–Whitney U (raw and from histograms) and the percentile bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from evaluation.stats import (
    HistogramLayout,
    LatencyHistogram,
    MeanStats,
    bootstrap_ci,
    mann_whitney_histograms,
    mann_whitney_u,
    welch_ttest,
)
from evaluation.stats.bootstrap import MIN_PER_ARM, SMALL_SAMPLE_NOTE

X = np.array([12.1, 14.3, 9.8, 11.0, 13.5, 10.2, 15.1, 12.7, 11.9, 10.8])
Y = np.array([13.2, 15.8, 12.9, 16.1, 14.4, 13.7, 17.0, 12.5])


def test_mann_whitney_raw_golden():
    # Mann and Whitney (1947); scipy mannwhitneyu(Y, X) (exact method, no ties), scipy 1.17.
    result = mann_whitney_u(X, Y)
    assert result.statistic == 67.0
    assert result.p_value == pytest.approx(0.01554001554001554, abs=1e-12)
    assert result.probability_of_superiority == pytest.approx(67 / 80)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_mann_whitney_raw_matches_scipy_with_ties(alternative):
    rng = np.random.default_rng(2)
    control = rng.integers(1, 6, 300)  # ordinal ratings, many ties
    treatment = rng.integers(1, 7, 280)
    result = mann_whitney_u(control, treatment, alternative=alternative)
    expected = stats.mannwhitneyu(treatment, control, alternative=alternative)
    assert result.statistic == expected.statistic
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-12)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_mann_whitney_histograms_equal_scipy_on_bucketed_data(alternative):
    # The histogram test treats a bucket as a tie group, so it is exactly the asymptotic
    # tie-corrected test on the data rounded to the bucket representatives.
    layout = HistogramLayout(relative_error=0.02)
    rng = np.random.default_rng(9)
    control = rng.lognormal(3.0, 0.6, 4000)
    treatment = rng.lognormal(3.05, 0.6, 3500)
    result = mann_whitney_histograms(
        LatencyHistogram.from_values(control, layout),
        LatencyHistogram.from_values(treatment, layout),
        alternative=alternative,
    )
    rounded_c = layout.representatives[layout.bucket_of(control)]
    rounded_t = layout.representatives[layout.bucket_of(treatment)]
    expected = stats.mannwhitneyu(
        rounded_t, rounded_c, alternative=alternative, method="asymptotic"
    )
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    # And within the documented bound of the raw statistic.
    raw = stats.mannwhitneyu(treatment, control, alternative=alternative)
    assert abs(result.statistic - raw.statistic) <= result.max_statistic_error
    assert result.max_statistic_error < 0.05 * result.n_control * result.n_treatment


def test_mann_whitney_control_without_observations():
    assert mann_whitney_u([], Y).error == "control has no observations"


def test_mann_whitney_treatment_without_observations():
    result = mann_whitney_u(X, [])
    assert result.error == "treatment has no observations"
    assert math.isnan(result.p_value)


def test_mann_whitney_all_tied():
    result = mann_whitney_u([3.0, 3.0], [3.0, 3.0, 3.0])
    assert result.error is not None and "tied" in result.error


def test_mann_whitney_histograms_degenerate_branches():
    empty = LatencyHistogram.empty()
    some = LatencyHistogram.from_values([10.0, 20.0])
    assert mann_whitney_histograms(empty, some).error == "control has no observations"
    assert mann_whitney_histograms(some, empty).error == "treatment has no observations"
    same = LatencyHistogram.from_values([10.0, 10.0])
    assert "tied" in mann_whitney_histograms(same, same).error


def test_mann_whitney_rejects_unknown_alternative():
    with pytest.raises(ValueError):
        mann_whitney_u(X, Y, alternative="bigger")


def test_bootstrap_mean_difference_agrees_with_scipy_bootstrap():
    # Percentile bootstrap (Efron and Tibshirani 1993); scipy.stats.bootstrap resamples the two
    # samples independently too, so the intervals agree up to Monte Carlo error.
    rng = np.random.default_rng(4)
    control = rng.exponential(50.0, 400)
    treatment = rng.exponential(56.0, 450)
    ours = bootstrap_ci(control, treatment, n_resamples=4000, seed=1)
    theirs = stats.bootstrap(
        (treatment, control),
        lambda t, c, axis: np.mean(t, axis=axis) - np.mean(c, axis=axis),
        method="percentile",
        n_resamples=4000,
        rng=np.random.default_rng(2),
    ).confidence_interval
    width = theirs.high - theirs.low
    assert ours.estimate == pytest.approx(treatment.mean() - control.mean())
    assert ours.ci_low == pytest.approx(theirs.low, abs=0.05 * width)
    assert ours.ci_high == pytest.approx(theirs.high, abs=0.05 * width)
    # With hundreds of observations the bootstrap and Welch intervals nearly coincide.
    welch = welch_ttest(MeanStats.from_values(control), MeanStats.from_values(treatment))
    assert ours.ci_low == pytest.approx(welch.ci_low, abs=0.06 * width)
    assert ours.ci_high == pytest.approx(welch.ci_high, abs=0.06 * width)


def test_bootstrap_of_p95_is_seeded_and_reproducible():
    rng = np.random.default_rng(8)
    control, treatment = rng.lognormal(3, 0.5, 2000), rng.lognormal(3.1, 0.5, 2000)

    def p95(values, axis):
        return np.quantile(values, 0.95, axis=axis)

    first = bootstrap_ci(control, treatment, p95, kind="relative", n_resamples=500, seed=3)
    second = bootstrap_ci(control, treatment, p95, kind="relative", n_resamples=500, seed=3)
    assert first == second
    assert first.ci_low < first.estimate < first.ci_high
    expected = np.quantile(treatment, 0.95) / np.quantile(control, 0.95) - 1
    assert first.estimate == pytest.approx(expected)


def test_bootstrap_control_without_observations():
    assert bootstrap_ci([], [1.0, 2.0]).error == "control has no observations"


def test_bootstrap_treatment_without_observations():
    assert bootstrap_ci([1.0, 2.0], []).error == "treatment has no observations"


def test_bootstrap_single_observation():
    result = bootstrap_ci([1.0], [1.0, 2.0])
    assert result.error is not None and result.error.startswith("control needs at least two")
    assert bootstrap_ci([1.0, 2.0], [1.0]).error.startswith("treatment needs at least two")


def test_bootstrap_relative_with_zero_control_statistic():
    result = bootstrap_ci([0.0, 0.0, 0.0], [1.0, 2.0], kind="relative", n_resamples=50)
    assert result.error is not None and "zero" in result.error
    assert math.isnan(result.ci_low)


def _coverage(n: int, experiments: int, rng: np.random.Generator) -> float:
    """How often the 95 % interval of a difference of two N(0, 1) means holds the true 0."""
    hits = 0
    for _ in range(experiments):
        result = bootstrap_ci(rng.normal(size=n), rng.normal(size=n), n_resamples=400, seed=rng)
        hits += result.ci_low <= 0.0 <= result.ci_high
    return hits / experiments


def test_bootstrap_flags_the_small_samples_where_it_covers_less_than_its_level():
    # The percentile interval's known small-sample shortfall (Hesterberg 2015, "What teachers
    # should know about the bootstrap", sec. 5): simulated, not assumed. 600 experiments: the
    # coverage's standard error is about 0.011.
    rng = np.random.default_rng(13)
    assert _coverage(5, 600, rng) < 0.93
    assert _coverage(MIN_PER_ARM, 600, rng) == pytest.approx(0.95, abs=0.025)
    small = bootstrap_ci(rng.normal(size=5), rng.normal(size=MIN_PER_ARM), n_resamples=50)
    assert small.note == SMALL_SAMPLE_NOTE and "fewer than 30" in small.note
    assert bootstrap_ci(rng.normal(size=MIN_PER_ARM), rng.normal(size=MIN_PER_ARM),
                        n_resamples=50).note is None
