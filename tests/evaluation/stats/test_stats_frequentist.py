"""Golden tests of the fixed-horizon tests against scipy and statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from evaluation.stats import (
    MeanStats,
    ProportionStats,
    chi_square_test,
    proportion_arrays,
    two_proportion_ztest,
    welch_arrays,
    welch_ttest,
)

CONTROL = ProportionStats(n=5000, successes=500)
TREATMENT = ProportionStats(n=5000, successes=540)

# Raw samples for the Welch tests (treatment is y).
X = np.array([12.1, 14.3, 9.8, 11.0, 13.5, 10.2, 15.1, 12.7, 11.9, 10.8])
Y = np.array([13.2, 15.8, 12.9, 16.1, 14.4, 13.7, 17.0, 12.5])


def test_two_proportion_z_golden():
    # Pooled z = (p_t - p_c) / sqrt(p (1 - p) (1/n_c + 1/n_t)); values from statsmodels 0.15
    # proportions_ztest([540, 500], [5000, 5000]) and confint_proportions_2indep(method="wald").
    result = two_proportion_ztest(CONTROL, TREATMENT)
    assert result.error is None
    assert result.statistic == pytest.approx(1.3103560459023966, abs=1e-12)
    assert result.p_value == pytest.approx(0.1900754156561011, abs=1e-12)
    assert result.ci_low == pytest.approx(-0.003964966116231686, abs=1e-12)
    assert result.ci_high == pytest.approx(0.01996496611623167, abs=1e-12)
    assert result.difference == pytest.approx(0.008, abs=1e-15)
    assert not result.significant


def test_two_proportion_z_matches_statsmodels_live():
    cases = [((1000, 100), (1100, 135)), ((20, 3), (25, 9)), ((100_000, 2_000), (98_000, 2_150))]
    for (n_c, s_c), (n_t, s_t) in cases:
        result = two_proportion_ztest(ProportionStats(n_c, s_c), ProportionStats(n_t, s_t))
        z, p = proportions_ztest([s_t, s_c], [n_t, n_c])
        low, high = confint_proportions_2indep(s_t, n_t, s_c, n_c, method="wald", compare="diff")
        assert result.statistic == pytest.approx(z, rel=1e-10)
        assert result.p_value == pytest.approx(p, rel=1e-9)
        assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-10)


def test_relative_lift_delta_method_golden():
    # Delta method for r = p_t / p_c - 1 (Kohavi, Tang and Xu 2020, ch. 18):
    # Var(r) = var_t / p_c^2 + p_t^2 var_c / p_c^4 with var_x = p_x (1 - p_x) / n_x
    #        = 1.92672e-5 / 0.01 + 0.011664 * 1.8e-5 / 1e-4 = 4.02624e-3.
    result = two_proportion_ztest(CONTROL, TREATMENT)
    half = stats.norm.ppf(0.975) * math.sqrt(4.02624e-3)
    assert result.relative_lift == pytest.approx(0.08, abs=1e-12)
    assert result.relative_ci_low == pytest.approx(0.08 - half, abs=1e-12)
    assert result.relative_ci_high == pytest.approx(0.08 + half, abs=1e-12)
    assert result.relative_ci_low == pytest.approx(-0.04436492738, abs=1e-10)


def test_relative_lift_standard_error_matches_simulation():
    # The delta-method standard error should match the spread of simulated ratios.
    rng = np.random.default_rng(5)
    n, p_c, p_t = 20_000, 0.1, 0.11
    ratios = rng.binomial(n, p_t, 100_000) / rng.binomial(n, p_c, 100_000) - 1.0
    arrays = proportion_arrays([n], [n * p_c], [n], [n * p_t])
    delta_se = (arrays.relative_ci_high[0] - arrays.relative_lift[0]) / stats.norm.ppf(0.975)
    assert delta_se == pytest.approx(ratios.std(), rel=0.02)


def test_chi_square_matches_scipy_without_correction():
    # Pearson chi-square of the 2x2 table; chi2_contingency(correction=False), scipy 1.17.
    result = chi_square_test(CONTROL, TREATMENT)
    chi2, p, dof, _ = stats.chi2_contingency([[540, 4460], [500, 4500]], correction=False)
    assert result.statistic == pytest.approx(1.717032967032967, abs=1e-12)
    assert result.statistic == pytest.approx(chi2, rel=1e-12)
    assert result.p_value == pytest.approx(p, rel=1e-10)
    assert result.df == dof == 1
    # For a 2x2 table the uncorrected chi-square is the square of the pooled z statistic.
    z = two_proportion_ztest(CONTROL, TREATMENT)
    assert result.statistic == pytest.approx(z.statistic**2, rel=1e-12)
    assert result.p_value == pytest.approx(z.p_value, rel=1e-10)


def test_welch_from_summary_statistics_golden():
    # Welch (1947); scipy ttest_ind_from_stats(105, 22, 800, 102, 20, 900, equal_var=False).
    control = MeanStats(900, 102.0 * 900, 20.0**2 * 899 + 102.0**2 * 900)
    treatment = MeanStats(800, 105.0 * 800, 22.0**2 * 799 + 105.0**2 * 800)
    result = welch_ttest(control, treatment)
    assert result.statistic == pytest.approx(2.928475050199339, abs=1e-9)
    assert result.p_value == pytest.approx(0.003453737926636243, abs=1e-10)
    expected = stats.ttest_ind_from_stats(105.0, 22.0, 800, 102.0, 20.0, 900, equal_var=False)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-10)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-8)


def test_welch_on_raw_data_golden():
    # scipy ttest_ind(Y, X, equal_var=False) and its confidence_interval(), scipy 1.17.
    result = welch_ttest(MeanStats.from_values(X), MeanStats.from_values(Y))
    assert result.statistic == pytest.approx(2.8498875313548298, abs=1e-10)
    assert result.p_value == pytest.approx(0.01186645601882698, abs=1e-10)
    assert result.df == pytest.approx(15.49844604243478, abs=1e-8)
    assert result.ci_low == pytest.approx(0.5871627220626234, abs=1e-10)
    assert result.ci_high == pytest.approx(4.032837277937374, abs=1e-10)
    live = stats.ttest_ind(Y, X, equal_var=False)
    ci = live.confidence_interval()
    assert (result.statistic, result.p_value, result.df) == pytest.approx(
        (live.statistic, live.pvalue, live.df), rel=1e-9
    )
    assert (result.ci_low, result.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_welch_with_one_constant_arm_still_tests():
    # Only one arm constant: the Welch df falls back to that of the other arm (n_t - 1).
    control = MeanStats.from_values([5.0] * 10)
    treatment = MeanStats.from_values(Y)
    result = welch_ttest(control, treatment)
    live = stats.ttest_ind_from_stats(
        Y.mean(), Y.std(ddof=1), len(Y), 5.0, 0.0, 10, equal_var=False
    )
    assert result.error is None
    assert result.df == pytest.approx(len(Y) - 1)
    assert result.p_value == pytest.approx(live.pvalue, rel=1e-9)


def test_kernels_are_vectorised_over_any_shape():
    n = np.array([[1000, 2000], [3000, 4000]])
    arrays = proportion_arrays(n, n * 0.1, n, n * 0.12)
    assert arrays.p_value.shape == (2, 2)
    for i, j in np.ndindex(2, 2):
        single = two_proportion_ztest(
            ProportionStats(int(n[i, j]), int(n[i, j] * 0.1)),
            ProportionStats(int(n[i, j]), int(n[i, j] * 0.12)),
        )
        assert arrays.p_value[i, j] == pytest.approx(single.p_value, rel=1e-12)


# One test per degenerate branch: a result that says why, never an exception or a warning.


def test_proportion_control_without_observations():
    result = two_proportion_ztest(ProportionStats(0, 0), TREATMENT)
    assert result.error == "control has no observations"
    assert math.isnan(result.p_value) and math.isnan(result.ci_low)
    assert not result.significant


def test_proportion_treatment_without_observations():
    result = two_proportion_ztest(CONTROL, ProportionStats(0, 0))
    assert result.error == "treatment has no observations"
    assert math.isnan(result.statistic)


def test_proportion_all_successes_in_both_arms():
    result = two_proportion_ztest(ProportionStats(50, 50), ProportionStats(70, 70))
    assert result.error is not None and "zero variance" in result.error
    assert math.isnan(result.p_value)
    assert result.difference == 0.0


def test_chi_square_degenerate_table():
    result = chi_square_test(ProportionStats(40, 0), ProportionStats(30, 0))
    assert result.error is not None and "zero variance" in result.error
    assert math.isnan(result.statistic)


def test_relative_lift_is_nan_when_control_rate_is_zero():
    result = two_proportion_ztest(ProportionStats(100, 0), ProportionStats(100, 5))
    assert result.error is None
    assert math.isnan(result.relative_lift) and math.isnan(result.relative_ci_low)
    assert not math.isnan(result.p_value)


def test_welch_control_without_observations():
    result = welch_ttest(MeanStats(0, 0.0, 0.0), MeanStats.from_values(Y))
    assert result.error == "control has no observations"


def test_welch_treatment_without_observations():
    result = welch_ttest(MeanStats.from_values(X), MeanStats(0, 0.0, 0.0))
    assert result.error == "treatment has no observations"


def test_welch_control_with_one_observation():
    result = welch_ttest(MeanStats.from_values([4.0]), MeanStats.from_values(Y))
    assert result.error is not None and result.error.startswith("control needs at least two")
    assert math.isnan(result.df)


def test_welch_treatment_with_one_observation():
    result = welch_ttest(MeanStats.from_values(X), MeanStats.from_values([4.0]))
    assert result.error is not None and result.error.startswith("treatment needs at least two")


def test_welch_zero_variance_in_both_arms():
    result = welch_ttest(MeanStats.from_values([3.0, 3.0]), MeanStats.from_values([4.0] * 5))
    assert result.error is not None and "zero variance" in result.error
    assert math.isnan(result.p_value)
    assert result.difference == pytest.approx(1.0)


def test_degenerate_elements_do_not_spoil_their_neighbours():
    arrays = welch_arrays([0, 10], [0, 50.0], [0, 300.0], [10, 10], [60.0, 60.0], [400.0, 400.0])
    assert np.isnan(arrays.p_value[0]) and np.isfinite(arrays.p_value[1])
    assert arrays.reason.tolist() == [1, 0]


def test_invalid_alpha_raises():
    with pytest.raises(ValueError, match="alpha"):
        two_proportion_ztest(CONTROL, TREATMENT, alpha=1.5)
