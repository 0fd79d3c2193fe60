"""Power, relative MDE, the relative lift's t-based interval and its sequential interval, and the
Gaussian posterior, checked against statsmodels, scipy or a closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize

from evaluation.stats import MeanStats, SequentialConfig, welch_arrays, welch_ttest
from evaluation.stats.bayesian_means import gaussian_test
from evaluation.stats.power import detectable_z, mde_relative
from evaluation.stats.power_effect import power_mean, power_proportion
from evaluation.stats.sequential import msprt_arrays, msprt_relative_arrays


@pytest.mark.parametrize("alternative", ["two-sided", "larger"])
def test_power_of_proportions_matches_statsmodels(alternative):
    h = proportion_effectsize(0.12, 0.10)
    expected = NormalIndPower().power(h, nobs1=1000, ratio=1.5, alpha=0.05,
                                      alternative=alternative)
    result = power_proportion(0.10, 0.12, 1500, 1000, alternative=alternative)
    assert result.power == pytest.approx(expected, abs=1e-12)
    # Golden (statsmodels 0.15): 0.3474698392 two-sided, 0.4690657323 one-sided.
    golden = {"two-sided": 0.3474698392006432, "larger": 0.46906573229030213}[alternative]
    assert result.power == pytest.approx(golden, abs=1e-10)


@pytest.mark.parametrize(("alternative", "difference"),
                         [("two-sided", 3.0), ("larger", 3.0), ("smaller", -3.0)])
def test_power_of_means_is_the_noncentral_t_of_statsmodels(alternative, difference):
    # Small samples: 20 and 25 observations, so the t (not normal) power matters.
    expected = TTestIndPower().power(difference / 10, nobs1=20, ratio=25 / 20, alpha=0.05,
                                     alternative=alternative)
    result = power_mean(difference, 10.0, 20, 25, alternative=alternative)
    assert result.power == pytest.approx(expected, abs=1e-12)
    normal = NormalIndPower().power(difference / 10, nobs1=20, ratio=25 / 20, alpha=0.05,
                                    alternative=alternative)
    assert result.power < normal  # the t test is less powerful at n = 20


def test_power_at_the_mde_is_the_target_power():
    from evaluation.stats import mde_mean

    mde = mde_mean(4000, 4000, 12.0)
    at_mde = power_mean(mde.absolute, 12.0, 4000, 4000)
    assert at_mde.power == pytest.approx(0.8, abs=1e-4)  # t vs normal at n = 4000


def test_relative_mde_solves_the_delta_method_equation():
    x = detectable_z(0.05, 0.8)
    result = mde_relative(50.0, 100.0, 1000, 120.0, 900)

    def gap(r: float) -> float:
        return r - x * math.sqrt(120 / (900 * 2500) + (1 + r) ** 2 * 100 / (1000 * 2500))

    assert result.relative == pytest.approx(optimize.brentq(gap, 1e-6, 1.0), abs=1e-12)
    assert result.absolute == pytest.approx(result.relative * 50.0)
    # A proportion: the treatment's variance at the root is p(1 + r)(1 - p(1 + r)).
    prop = mde_relative(0.1, 0.09, 5000, None, 5000, is_proportion=True)

    def gap_p(r: float) -> float:
        p_t = 0.1 * (1 + r)
        return r - x * math.sqrt(p_t * (1 - p_t) / (5000 * 0.01) + (1 + r) ** 2 * 0.09 / 50)

    assert prop.relative == pytest.approx(optimize.brentq(gap_p, 1e-6, 5.0), abs=1e-10)
    assert mde_relative(0.0, 1.0, 10, 1.0, 10).error is not None


def test_relative_mde_downwards_is_the_root_below_zero():
    """For a metric whose lower values are better the MDE is the smallest detectable fall: the
    root of the same equation in (-1, 0), smaller in size than the rise (the treatment's mean,
    and so the control's share of the lift's noise, shrinks with it)."""
    x = detectable_z(0.05, 0.8)
    up = mde_relative(50.0, 100.0, 1000, 120.0, 900)
    down = mde_relative(50.0, 100.0, 1000, 120.0, 900, downward=True)

    def gap(r: float) -> float:
        return -r - x * math.sqrt(120 / (900 * 2500) + (1 + r) ** 2 * 100 / (1000 * 2500))

    assert down.error is None
    assert down.relative == pytest.approx(optimize.brentq(gap, -0.999, -1e-9), abs=1e-12)
    assert -up.relative < down.relative < 0
    assert down.absolute == pytest.approx(down.relative * 50.0)
    prop = mde_relative(0.1, 0.09, 5000, None, 5000, is_proportion=True, downward=True)

    def gap_p(r: float) -> float:
        p_t = 0.1 * (1 + r)
        return -r - x * math.sqrt(p_t * (1 - p_t) / (5000 * 0.01) + (1 + r) ** 2 * 0.09 / 50)

    assert prop.relative == pytest.approx(optimize.brentq(gap_p, -0.999, -1e-9), abs=1e-10)
    # Where even a fall to 0 is within the treatment's noise, none is detectable.
    noisy = mde_relative(1.0, 1.0, 10, 400.0, 10, downward=True)
    assert noisy.error is not None and "fall" in noisy.error and math.isnan(noisy.relative)


def test_relative_interval_uses_welchs_t_and_agrees_with_its_p_value():
    control = MeanStats.from_values([10.2, 9.1, 11.5, 10.9, 9.7, 10.4])
    treatment = MeanStats.from_values([11.9, 12.6, 10.8, 12.2, 11.1, 13.0])
    result = welch_ttest(control, treatment)
    # Closed form: lift +- t_{df, 0.975} * se with the delta-method se and Welch's df.
    m_c, m_t = control.mean, treatment.mean
    se = math.sqrt(treatment.variance / 6 / m_c**2 + m_t**2 * control.variance / 6 / m_c**4)
    t = stats.t.ppf(0.975, result.df)
    assert result.relative_ci_high - result.relative_lift == pytest.approx(t * se, rel=1e-12)
    assert result.relative_p_value == pytest.approx(
        2 * stats.t.sf(abs(result.relative_lift / se), result.df), rel=1e-12)
    # Across many draws the interval excludes 0 exactly when the p-value is below alpha.
    rng = np.random.default_rng(5)
    a = rng.normal(10, 2, (400, 5))
    b = rng.normal(11, 2, (400, 5))
    arrays = welch_arrays(5, a.sum(1), (a * a).sum(1), 5, b.sum(1), (b * b).sum(1))
    excludes = (arrays.relative_ci_low > 0) | (arrays.relative_ci_high < 0)
    np.testing.assert_array_equal(excludes, arrays.relative_p_value < 0.05)


def test_sequential_relative_interval_is_the_absolute_one_scaled_when_control_is_exact():
    # With no control noise the relative lift is the difference over |C|: same mixture test.
    config = SequentialConfig(mixture_variance=None, tuning_n=1000)
    absolute = msprt_arrays([2.0], [0.0], [5000], [100.0], [5000], config)
    relative = msprt_relative_arrays([-40.0], [0.0], [5000], [-38.0], [100.0], [5000], config)
    assert relative.difference[0] == pytest.approx(2.0 / 40.0)
    assert relative.ci_low[0] == pytest.approx(absolute.ci_low[0] / 40.0, rel=1e-12)
    assert relative.ci_high[0] == pytest.approx(absolute.ci_high[0] / 40.0, rel=1e-12)
    assert relative.p_value[0] == pytest.approx(absolute.p_value[0], rel=1e-12)
    zero = msprt_relative_arrays([0.0], [1.0], [50], [1.0], [1.0], [50])
    assert np.isnan(zero.ci_low[0]) and zero.reason[0] != 0


def test_gaussian_posterior_against_numerical_integration():
    rng = np.random.default_rng(2)
    control = MeanStats.from_values(rng.normal(100, 15, 300))
    treatment = MeanStats.from_values(rng.normal(102, 15, 280))
    result = gaussian_test(control, treatment)
    mu = treatment.mean - control.mean
    s = math.sqrt(control.variance / 300 + treatment.variance / 280)
    posterior = stats.norm(mu, s)
    assert result.chance_to_win == pytest.approx(posterior.sf(0.0), abs=1e-12)
    loss = integrate.quad(lambda d: -d * posterior.pdf(d), -np.inf, 0.0)[0]
    keep = integrate.quad(lambda d: d * posterior.pdf(d), 0.0, np.inf)[0]
    assert result.expected_loss == pytest.approx(loss, rel=1e-8)
    assert result.expected_loss_control == pytest.approx(keep, rel=1e-8)
    assert (result.ci_low, result.ci_high) == pytest.approx(posterior.interval(0.95), rel=1e-12)
    se_rel = math.sqrt(treatment.variance / 280 / control.mean**2
                       + treatment.mean**2 * control.variance / 300 / control.mean**4)
    lift = mu / abs(control.mean)
    assert result.relative_ci_low == pytest.approx(lift - 1.959963984540054 * se_rel, rel=1e-12)
    assert gaussian_test(MeanStats.from_values([1.0]), treatment).error is not None


def test_full_results_give_bayesian_figures_for_means_and_credible_intervals_for_rates():
    from evaluation.stats import ExperimentAggregates, analyze

    n = np.array([[[2000.0, 300.0]], [[2000.0, 280.0]]]).reshape(2, 2, 1)
    sums = np.array([[[200.0], [300.0 * 100]], [[240.0], [280.0 * 102]]])
    squares = np.array([[[200.0], [300 * 100.0**2 + 299 * 15.0**2]],
                        [[240.0], [280 * 102.0**2 + 279 * 15.0**2]]])
    results = analyze(ExperimentAggregates(n, sums, squares, [True, False]))
    assert 0.5 < results.chance_to_win[0, 1, 0] < 1
    # Beta(201, 1801) against Beta(241, 1761): Monte Carlo quantiles of the difference.
    rng = np.random.default_rng(0)
    draws = rng.beta(241, 1761, 400_000) - rng.beta(201, 1801, 400_000)
    low, high = np.quantile(draws, [0.025, 0.975])
    assert results.credible_ci_low[0, 0, 0] == pytest.approx(low, abs=1.5e-3)
    assert results.credible_ci_high[0, 0, 0] == pytest.approx(high, abs=1.5e-3)
    assert results.sequential_relative_ci_low[0, 0, 0] < results.relative_lift[0, 0, 0]


@pytest.mark.parametrize("downward", [False, True])
def test_relative_mde_below_a_negative_baseline(downward: bool) -> None:
    """Below a negative control mean the treatment's is ``C (1 - r)``, so a rise shrinks its
    magnitude (and its share of the lift's noise): each MDE solves the delta method's equation
    with ``(1 - r)^2``, checked by scipy's root finder on the normal power itself."""
    z = stats.norm.ppf(0.975)
    c, v_c, n_c, v_t, n_t = -2.0, 4.0, 50, 9.0, 60

    def power_gap(r: float) -> float:
        t = c + r * abs(c)
        x = r / math.sqrt(v_t / (n_t * c * c) + t * t * v_c / (n_c * c**4))
        return float(stats.norm.cdf(x - z) + stats.norm.cdf(-x - z)) - 0.8

    bracket = (-50.0, -1e-9) if downward else (1e-9, 0.999)
    expected = optimize.brentq(power_gap, *bracket)
    result = mde_relative(c, v_c, n_c, v_t, n_t, downward=downward)
    assert result.error is None
    assert result.relative == pytest.approx(expected, abs=1e-9)
    assert result.absolute == pytest.approx(expected * 2.0)
