"""Wrong or silent results of the statistics package, each pinned by a test that failed before."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep

from evaluation.decisions import _lift
from evaluation.stats import (
    ExperimentAggregates,
    MeanStats,
    ProportionStats,
    analyze,
    beta_binomial_arrays,
    bootstrap_ci,
    mann_whitney_u,
    msprt_arrays,
    proportion_arrays,
    sample_ratio_mismatch,
    two_proportion_ztest,
    welch_arrays,
    welch_ttest,
)
from evaluation.stats.bayesian_means import gaussian_arrays
from evaluation.stats.power import mde_mean_arrays, mde_proportion_arrays
from evaluation.stats.reasons import Reason
from evaluation.stats.srm import srm_arrays

# -- relative lift over a negative control -------------------------------------------------


def test_relative_lift_divides_by_the_controls_magnitude():
    # Control about -10, treatment about -5: the treatment rose by half the control's size.
    control = MeanStats.from_values([-11.0, -9.0, -10.5, -9.5])
    treatment = MeanStats.from_values([-6.0, -4.0, -5.5, -4.5])
    result = welch_ttest(control, treatment)
    assert result.relative_lift == pytest.approx(0.5, abs=1e-12)
    assert result.relative_ci_low < 0.5 < result.relative_ci_high
    assert result.relative_ci_low > 0  # a clear rise, so the interval lies above zero
    assert _lift({"relative_lift": result.relative_lift, "difference": 5.0}) == (
        "+50.0% relative to control")


def test_bootstrap_relative_lift_with_a_negative_control():
    result = bootstrap_ci([-11.0, -9.0, -10.5, -9.5], [-6.0, -4.0, -5.5, -4.5], kind="relative",
                          n_resamples=200)
    assert result.estimate == pytest.approx(0.5)
    assert result.ci_low > 0


# -- impossible aggregates are refused everywhere ------------------------------------------


def test_sum_of_squares_below_its_floor_is_refused():
    with pytest.raises(ValueError, match="below sum\\*\\*2 / n"):
        MeanStats(10, 100.0, 900.0)  # needs at least 100**2 / 10 = 1000
    with pytest.raises(ValueError, match="below sum\\*\\*2 / n"):
        welch_arrays([10], [100.0], [900.0], [10], [100.0], [1100.0])
    n = np.full((2, 1, 1), 10.0)
    with pytest.raises(ValueError, match="below sum\\*\\*2 / n"):
        ExperimentAggregates(n, n * 10, n * 9, [False])
    # Rounding below the floor is tolerated: 0.1 has no exact binary form.
    MeanStats(3, 0.30000000000000004, 0.030000000000000002)


def test_more_successes_than_units_is_refused_by_the_array_functions():
    with pytest.raises(ValueError, match="cannot exceed"):
        proportion_arrays([10], [11], [10], [5])
    with pytest.raises(ValueError, match="cannot exceed"):
        beta_binomial_arrays([10], [5], [10], [12])
    with pytest.raises(ValueError, match="NaN"):
        proportion_arrays([np.nan], [1], [10], [5])


@pytest.mark.parametrize("bad", [np.nan, -3.0])
def test_negative_or_nan_units_are_refused_in_srm_and_full_results(bad):
    with pytest.raises(ValueError, match="unit counts"):
        srm_arrays([[100.0, bad]], [0.5, 0.5])
    with pytest.raises(ValueError, match="unit counts"):
        sample_ratio_mismatch([100, bad], [0.5, 0.5])
    n = np.full((2, 1, 2), 100.0)
    aggregates = ExperimentAggregates(n, n * 0.1, n * 0.1, [True])
    with pytest.raises(ValueError, match="units"):
        analyze(aggregates, units=[[100.0, 100.0], [100.0, bad]], weights=[0.5, 0.5])


# -- no NaN without a reason ---------------------------------------------------------------


def test_nan_data_is_refused_not_returned_as_nan():
    with pytest.raises(ValueError, match="NaN"):
        mann_whitney_u([1.0, np.nan, 3.0], [2.0, 4.0])
    with pytest.raises(ValueError, match="NaN"):
        msprt_arrays([np.nan], [1.0], [100], [1.0], [100])
    with pytest.raises(ValueError, match="NaN"):
        msprt_arrays([0.1], [np.nan], [100], [1.0], [100])
    with pytest.raises(ValueError, match="NaN"):
        mde_mean_arrays([np.nan], [100], [1.0], [100])
    with pytest.raises(ValueError, match="NaN"):
        mde_proportion_arrays([np.nan], [100], [100])
    with pytest.raises(ValueError, match="NaN"):
        beta_binomial_arrays([100], [np.nan], [100], [5])
    with pytest.raises(ValueError, match="NaN"):
        gaussian_arrays([np.nan], [1.0], [10], [1.0], [1.0], [10])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, np.nan], [1.0, 2.0])


def test_bootstrap_messages_fit_the_statistic_asked():
    def broken(values: np.ndarray, axis: int = -1) -> np.ndarray:
        with np.errstate(divide="ignore"):  # -inf whenever a resample holds a zero
            return np.log(np.min(values, axis=axis))

    result = bootstrap_ci([0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0], broken, n_resamples=200)
    assert result.error is not None and "relative" not in result.error
    zero = bootstrap_ci([0.0, 0.0, 0.0], [1.0, 2.0], kind="relative", n_resamples=20)
    assert zero.error == "the control's statistic is zero, so there is no relative lift"


def test_a_zero_control_mean_says_why_the_relative_lift_is_missing():
    result = two_proportion_ztest(ProportionStats(400, 0), ProportionStats(400, 20))
    assert result.error is None and np.isnan(result.relative_lift)
    assert result.note == "the control mean is zero, so there is no relative lift"


# -- tiny samples --------------------------------------------------------------------------


def test_zero_of_one_against_one_of_one_uses_fishers_exact_test():
    # Before: a zero-width Wald interval [1, 1] beside p = 0.157 from the normal approximation.
    result = two_proportion_ztest(ProportionStats(1, 0), ProportionStats(1, 1))
    assert result.p_value == pytest.approx(stats.fisher_exact([[1, 0], [0, 1]]).pvalue)
    assert result.p_value == 1.0
    low, high = confint_proportions_2indep(1, 1, 0, 1, method="newcomb")
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), abs=1e-12)
    assert result.ci_low < 0 < result.ci_high
    assert "Fisher" in result.note and np.isnan(result.relative_ci_low)


def test_small_tables_match_fisher_and_newcombe_golden():
    # 2/8 against 6/9: smallest expected count 8 * 8/17 = 3.8 < 5, so the exact test.
    result = two_proportion_ztest(ProportionStats(8, 2), ProportionStats(9, 6))
    assert result.p_value == pytest.approx(stats.fisher_exact([[6, 3], [2, 6]]).pvalue, 1e-12)
    assert result.p_value == pytest.approx(0.153434800493624, abs=1e-12)
    low, high = confint_proportions_2indep(6, 9, 2, 8, method="newcomb")
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), abs=1e-12)
    # Large tables keep the z-test.
    large = two_proportion_ztest(ProportionStats(500, 50), ProportionStats(500, 60))
    assert large.note is None


# -- numerically stable variance -----------------------------------------------------------


def _offset_samples() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    return 1e8 + rng.normal(0.0, 2.0, 4000), 1e8 + 0.2 + rng.normal(0.0, 2.0, 4000)


def test_values_near_1e8_with_a_spread_of_units_give_the_right_t():
    x, y = _offset_samples()
    expected = stats.ttest_ind(y - 1e8, x - 1e8, equal_var=False)
    control, treatment = MeanStats.from_values(x), MeanStats.from_values(y)
    result = welch_ttest(control, treatment)
    assert result.error is None
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-6)
    # Merging halves (Chan) keeps it.
    halves = MeanStats.from_values(x[:1500]) + MeanStats.from_values(x[1500:])
    assert halves.variance == pytest.approx(np.var(x - 1e8, ddof=1), rel=1e-9)
    # And so does the whole-experiment pass built from raw rows.
    arm = np.repeat([0, 1], 4000)
    aggregates = ExperimentAggregates.from_long_rows(
        arm, np.zeros(8000, int), np.zeros(8000, int), np.concatenate([x, y]), [False],
        n_arms=2, n_slices=1)
    assert analyze(aggregates).statistic[0, 0, 0] == pytest.approx(expected.statistic, rel=1e-6)
    twice = stats.ttest_ind(np.tile(y - 1e8, 2), np.tile(x - 1e8, 2), equal_var=False)
    merged = aggregates + aggregates
    assert analyze(merged).statistic[0, 0, 0] == pytest.approx(twice.statistic, rel=1e-6)


@pytest.mark.parametrize("value", [10.0, 0.9, 0.1, 1 / 3])
def test_a_constant_that_binary_cannot_hold_is_still_zero_variance(value: float) -> None:
    """Sums of 0.9s leave about 1e-16 where the variance is: the test was "valid" (p = 1, an
    interval of +-1.7e-8; 0.9 against 0.8 read p = 1.5e-64) while 10.0s said zero variance."""
    control = MeanStats.from_values(np.full(6, value))
    assert control.variance == 0.0
    for other in (value, value - 0.1):
        n, total = [6.0], [6 * value]
        result = welch_arrays(n, total, [6 * value * value], n, [6 * other], [6 * other * other])
        assert int(result.reason[0]) == int(Reason.NO_VARIANCE), (value, other)
    # A real spread, however small next to the mean, is kept.
    spread = MeanStats.from_values(np.array([0.9, 0.9, 0.9 + 1e-6]))
    assert spread.variance == pytest.approx(np.var([0.9, 0.9, 0.9 + 1e-6], ddof=1), rel=1e-3)


@pytest.mark.parametrize("n", [2, 3, 5, 20])
def test_the_chance_to_win_of_a_few_means_is_their_t_posteriors(n: int) -> None:
    """Two latencies a side (10, 11 against 12, 13) read a 99.8 % chance to win with the
    variance plugged in; each mean's posterior is a t on n - 1 degrees of freedom (BDA3 3.2),
    and those give 85 %. Checked against a Monte Carlo of the posteriors."""
    rng = np.random.default_rng(n)
    control, treatment = rng.normal(10, 1, n), rng.normal(11, 1, n)
    if n == 2:
        control, treatment = np.array([10.0, 11.0]), np.array([12.0, 13.0])
    got = gaussian_arrays([control.mean()], [control.var(ddof=1)], [n], [treatment.mean()],
                          [treatment.var(ddof=1)], [n])
    draws = 4_000_000
    posterior = [x.mean() + x.std(ddof=1) / np.sqrt(n) * rng.standard_t(n - 1, draws)
                 for x in (control, treatment)]
    assert got.chance_to_win[0] == pytest.approx(np.mean(posterior[1] > posterior[0]),
                                                 abs=2e-3)
    if n == 2:
        assert got.chance_to_win[0] == pytest.approx(0.852, abs=2e-3)
    # The interval and losses: Welch's t approximation (unbounded losses below 1 df are NaN).
    se = np.sqrt(control.var(ddof=1) / n + treatment.var(ddof=1) / n)
    df = stats.ttest_ind(treatment, control, equal_var=False).df
    half = stats.t.isf(0.025, df) * se
    diff = treatment.mean() - control.mean()
    assert (got.ci_low[0], got.ci_high[0]) == pytest.approx((diff - half, diff + half))
    assert np.isnan(got.expected_loss[0]) == (df <= 1)


def test_no_normal_credible_relative_interval_where_the_relative_interval_is_withheld():
    """1 of 15 against 0 of 15: the Beta credible interval of the difference reached +0.12,
    yet the relative one, from the normal approximation the frequentist side declines at such
    counts ("no relative interval is given"), was [-100 %, -100 %]."""
    n = np.full((2, 1, 1), 15.0)
    sums = np.array([1.0, 0.0]).reshape(2, 1, 1)
    record = analyze(ExperimentAggregates(n, sums, sums, [True])).to_records()[0]
    assert record["relative_ci_low"] is None and record["credible_ci_high"] > 0.05
    assert record["credible_relative_ci_low"] is None
    assert record["credible_relative_ci_high"] is None
    # Where the normal approximation holds, both relative intervals are given.
    n = np.full((2, 1, 1), 2000.0)
    sums = np.array([200.0, 260.0]).reshape(2, 1, 1)
    record = analyze(ExperimentAggregates(n, sums, sums, [True])).to_records()[0]
    assert record["relative_ci_low"] is not None
    assert record["credible_relative_ci_low"] < 0.3 < record["credible_relative_ci_high"]
