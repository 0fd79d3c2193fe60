"""Sample ratio mismatch, Holm / Benjamini–Hochberg and power, against scipy and statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, TTestIndPower, zt_ind_solve_power
from statsmodels.stats.proportion import proportion_effectsize

from evaluation.stats import (
    adjust_p_values,
    benjamini_hochberg,
    holm,
    mde_mean,
    mde_proportion,
    power_mean,
    sample_ratio_mismatch,
    sample_size_mean,
    sample_size_proportion,
)
from evaluation.stats.srm import srm_arrays, srm_testable

# --- sample ratio mismatch: Pearson chi-square goodness of fit ------------------------------


def test_srm_golden_two_arms():
    # sum (o - e)^2 / e = 2 * 120^2 / 5000 = 5.76; scipy chisquare([5120, 4880], [5000, 5000]).
    result = sample_ratio_mismatch([5120, 4880], [0.5, 0.5])
    assert result.statistic == pytest.approx(5.76, abs=1e-12)
    assert result.p_value == pytest.approx(0.01639507184919225, abs=1e-12)
    assert result.df == 1
    assert not result.mismatch  # 0.016 is not below the 0.001 alarm threshold
    assert sample_ratio_mismatch([5120, 4880], [1, 1], threshold=0.05).mismatch


def test_srm_golden_three_arms_mismatch():
    result = sample_ratio_mismatch([5400, 2300, 2300], [0.5, 0.25, 0.25])
    expected = stats.chisquare([5400, 2300, 2300], [5000, 2500, 2500])
    assert result.statistic == pytest.approx(64.0, abs=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-10)
    assert result.p_value == pytest.approx(1.2664165549094158e-14, rel=1e-8)
    assert result.mismatch
    assert result.expected == (5000.0, 2500.0, 2500.0)


def test_srm_vectorised_matches_scalar():
    counts = np.array([[5120, 4880], [500, 510], [1000, 800]])
    statistic, p_value = srm_arrays(counts, [1, 1])
    for row, stat, p in zip(counts, statistic, p_value, strict=True):
        expected = stats.chisquare(row)
        assert stat == pytest.approx(expected.statistic)
        assert p == pytest.approx(expected.pvalue, rel=1e-10)


def test_srm_without_units():
    result = sample_ratio_mismatch([0, 0], [0.5, 0.5])
    assert result.error == "no units have been assigned yet"
    assert not result.mismatch and math.isnan(result.p_value)


def test_srm_units_in_an_arm_with_zero_weight():
    result = sample_ratio_mismatch([500, 480, 3], [0.5, 0.5, 0.0])
    assert result.mismatch and result.p_value == 0.0 and math.isinf(result.statistic)
    healthy = sample_ratio_mismatch([500, 480, 0], [0.5, 0.5, 0.0])
    assert not healthy.mismatch and healthy.df == 1


def test_srm_with_few_units_in_an_arm_is_exact() -> None:
    """A 1 % canary's first units: chi-square read 4 and 1 at 99/1 as p = 2e-5, a mismatch that
    stopped a healthy experiment; 1 in 5 happens 4.9 % of the time."""
    few = sample_ratio_mismatch([4, 1], [0.99, 0.01])
    assert few.method == "exact binomial" and not few.mismatch
    assert few.p_value == pytest.approx(stats.binomtest(4, 5, 0.99).pvalue, rel=1e-12)
    assert few.p_value == pytest.approx(0.049, abs=0.001)
    # A correct 99/1 split of n units is flagged (p < 0.001) at most about as often as promised.
    for n in (5, 10, 20, 50, 100):
        k = np.arange(n + 1)
        flagged = np.array([sample_ratio_mismatch([n - x, x], [0.99, 0.01]).mismatch for x in k])
        assert stats.binom.pmf(k, n, 0.01)[flagged].sum() <= 0.0011, n
    # Three arms, one expecting under 5: each arm against the rest, Bonferroni.
    three = sample_ratio_mismatch([60, 38, 2], [0.6, 0.36, 0.04])
    assert three.method == "exact binomial per arm, Bonferroni"
    each = [stats.binomtest(x, 100, w).pvalue for x, w in ((60, 0.6), (38, 0.36), (2, 0.04))]
    assert three.p_value == pytest.approx(min(1.0, 3 * min(each)), rel=1e-12)
    broken = sample_ratio_mismatch([97, 0, 3], [0.06, 0.9, 0.04])
    assert broken.mismatch and broken.method.startswith("exact")
    assert sample_ratio_mismatch([5120, 4880], [0.5, 0.5]).method == "chi-square"


def test_srm_single_live_arm():
    result = sample_ratio_mismatch([10, 0], [1.0, 0.0])
    assert result.error is not None and "one arm" in result.error


def test_srm_invalid_configuration_raises():
    with pytest.raises(ValueError):
        sample_ratio_mismatch([1, 2], [0.0, 0.0])
    with pytest.raises(ValueError):
        sample_ratio_mismatch([1, 2, 3], [0.5, 0.5])


# --- multiple comparisons ---------------------------------------------------------------------

P_VALUES = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]


def test_holm_golden():
    # Holm (1979) step-down; statsmodels multipletests(method="holm"), 0.15.
    result = holm(P_VALUES)
    expected = [0.01, 0.072, 0.312, 0.312, 0.312, 0.312, 0.312, 0.615, 0.615, 0.615]
    np.testing.assert_allclose(result.p_adjusted, expected, atol=1e-12)
    assert result.reject.tolist() == [True] + [False] * 9


def test_benjamini_hochberg_golden():
    # Benjamini and Hochberg (1995) step-up; statsmodels multipletests(method="fdr_bh").
    result = benjamini_hochberg(P_VALUES)
    expected = [0.01, 0.04, 0.084, 0.084, 0.084, 0.1, 0.10571428571428572, 0.216, 0.216, 0.216]
    np.testing.assert_allclose(result.p_adjusted, expected, atol=1e-12)
    assert result.reject.tolist() == [True, True] + [False] * 8


@pytest.mark.parametrize(("ours", "theirs"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjustments_match_statsmodels_on_random_p_values(ours, theirs):
    rng = np.random.default_rng(12)
    p = np.concatenate([rng.uniform(0, 1, 350), rng.uniform(0, 0.002, 50)])
    p[[3, 4]] = p[5]  # ties
    result = adjust_p_values(p.reshape(20, 20), ours, alpha=0.05)
    reject, corrected, _, _ = multipletests(p, alpha=0.05, method=theirs)
    np.testing.assert_allclose(result.p_adjusted.ravel(), corrected, rtol=1e-12)
    assert result.reject.ravel().tolist() == reject.tolist()
    assert result.p_adjusted.shape == (20, 20) and result.n_tests == 400


@pytest.mark.parametrize(("ours", "theirs"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_rejects_on_a_threshold_match_statsmodels(ours, theirs):
    # A p exactly on its step's threshold is rejected: 0.05 * 6 / 6 rounds above 0.05 as an
    # adjusted p, so rejects are taken from the step rule itself. Rounded p-values (exact tests
    # on small counts) land on thresholds often; with NaN among them, which never reject.
    exact = adjust_p_values([0.02, 0.05, 0.001, 0.02, 0.02, 0.01], "bh")
    assert exact.p_adjusted[1] > 0.05 and exact.reject.all()
    rng = np.random.default_rng(5)
    for _ in range(60):  # (multipletests takes ~20 ms a call, far more on a busy machine)
        # Each p on one of the steps' thresholds of its family (alpha k / m, alpha / k).
        m = int(rng.integers(1, 12))
        k = rng.integers(1, m + 1, m).astype(float)
        p = 0.05 * k / m if ours == "bh" else 0.05 / k
        p[rng.random(m) < 0.1] = np.nan
        tested = ~np.isnan(p)
        result = adjust_p_values(p, ours, alpha=0.05)
        assert not result.reject[~tested].any()
        if tested.any():
            want = multipletests(p[tested], alpha=0.05, method=theirs)[0]
            assert result.reject[tested].tolist() == want.tolist(), p


def test_adjustments_skip_nan_p_values():
    # Degenerate comparisons are not tests: the others are adjusted as if they were absent.
    p = np.array([0.01, np.nan, 0.02, 0.03])
    result = holm(p)
    assert np.isnan(result.p_adjusted[1]) and not result.reject[1]
    np.testing.assert_allclose(
        result.p_adjusted[[0, 2, 3]], multipletests([0.01, 0.02, 0.03], method="holm")[1]
    )
    assert result.n_tests == 3
    assert holm([np.nan, np.nan]).n_tests == 0


@pytest.mark.parametrize(("ours", "theirs"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_family_axis_adjusts_each_index_as_its_own_family(ours, theirs):
    # Treatments x metrics x slices with one family per slice: each slice's adjusted p-values
    # are statsmodels' over that slice alone (NaN left out, ties kept).
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.1, (3, 4, 6))
    p[0, 0, 1] = p[1, 2, 1]
    p[2, :, 4] = np.nan
    p[:, :, 5] = np.nan
    result = adjust_p_values(p, ours, alpha=0.05, family_axis=2)
    for s in range(6):
        family = p[:, :, s]
        valid = ~np.isnan(family)
        assert np.isnan(result.p_adjusted[:, :, s][~valid]).all()
        if valid.any():
            reject, corrected, _, _ = multipletests(family[valid], alpha=0.05, method=theirs)
            np.testing.assert_allclose(result.p_adjusted[:, :, s][valid], corrected, rtol=1e-12)
            assert result.reject[:, :, s][valid].tolist() == reject.tolist()
    assert result.n_tests == int((~np.isnan(p)).sum())


def test_srm_testable_needs_five_expected_units_in_every_live_arm():
    # Cochran's rule for the chi-square approximation: expected count >= 5 in every cell.
    counts = [[7, 0, 0], [5, 5, 4], [6, 5, 4], [10, 10, 3], [0, 0, 0]]
    assert srm_testable(counts, [1, 1, 1]).tolist() == [False, False, True, True, False]
    # An arm with weight 0 expects nothing and does not count.
    assert srm_testable([[5, 5, 0], [3, 3, 0]], [1, 1, 0]).tolist() == [True, False]


def test_adjustment_validation():
    with pytest.raises(ValueError):
        adjust_p_values([0.1], "bonferroni")
    with pytest.raises(ValueError):
        holm([1.5])


# --- power --------------------------------------------------------------------------------------


def test_sample_size_for_proportions_matches_statsmodels():
    # Cohen's h = 2 asin(sqrt(0.12)) - 2 asin(sqrt(0.10)); NormalIndPower().solve_power.
    size = sample_size_proportion(0.10, 0.12, alpha=0.05, power=0.8)
    h = proportion_effectsize(0.12, 0.10)
    expected = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=1.0)
    assert size.exact_control == pytest.approx(3834.595739884031, rel=1e-6)
    assert size.exact_control == pytest.approx(expected, rel=1e-6)
    assert size.control == size.treatment == 3835


def test_sample_size_for_means_with_unequal_arms():
    # d = 0.2, power 0.9, n_t = 2 n_c: statsmodels gives nobs1 = 394.0282259295032.
    size = sample_size_mean(difference=2.0, std=10.0, alpha=0.05, power=0.9, ratio=2.0)
    assert size.exact_control == pytest.approx(394.0282259295032, rel=1e-6)
    assert (size.control, size.treatment) == (395, 789)


def test_mde_for_means_matches_zt_ind_solve_power():
    # statsmodels' root finder stops early: zt_ind_solve_power(nobs1=5000, alpha=0.05,
    # power=0.8, ratio=1) = 0.056029829945018796 has power 0.79997. Ours solves the same
    # two-tailed power equation to machine precision, so statsmodels' own power function
    # returns exactly 0.8 at our MDE, and the two MDEs agree to 1e-4.
    mde = mde_mean(5000, 5000, std=1.0, alpha=0.05, power=0.8)
    assert mde.absolute == pytest.approx(0.0560316357402716, rel=1e-10)
    assert mde.absolute == pytest.approx(0.056029829945018796, rel=1e-4)
    assert NormalIndPower().power(mde.absolute, 5000, 0.05, ratio=1.0) == pytest.approx(
        0.8, abs=1e-12
    )
    live = zt_ind_solve_power(effect_size=None, nobs1=2000, alpha=0.01, power=0.9, ratio=1.5)
    ours = mde_mean(2000, 3000, std=3.0, alpha=0.01, power=0.9)
    assert ours.absolute == pytest.approx(3.0 * live, rel=1e-4)
    assert NormalIndPower().power(ours.absolute / 3.0, 2000, 0.01, ratio=1.5) == pytest.approx(
        0.9, abs=1e-12
    )


@pytest.mark.parametrize("n", [3, 5, 10, 30, 200])
def test_mde_for_means_at_few_observations_is_the_t_test_s(n):
    # The results run a t test: at 3 observations an arm the normal's MDE had 56 % power.
    mde = mde_mean(n, n, std=1.0, alpha=0.05, power=0.8)
    want = TTestIndPower().solve_power(effect_size=None, nobs1=n, alpha=0.05, power=0.8)
    assert mde.absolute == pytest.approx(want, rel=1e-5)  # statsmodels' root finder's tolerance
    assert power_mean(mde.absolute, 1.0, n, n).power == pytest.approx(0.8, abs=1e-9)
    # Two standard deviations: Welch's degrees of freedom, as the test the results run.
    welch = mde_mean(n, 2 * n, std=1.0, treatment_std=3.0).absolute
    assert power_mean(welch, 1.0, n, 2 * n, treatment_std=3.0).power == pytest.approx(
        0.8, abs=1e-9)


def test_mde_for_proportions_inverts_the_sample_size():
    mde = mde_proportion(0.10, 3834.595739884031, 3834.595739884031)
    assert mde.absolute == pytest.approx(0.02, rel=1e-6)
    assert mde.relative == pytest.approx(0.2, rel=1e-6)
    assert mde.standardized == pytest.approx(proportion_effectsize(0.12, 0.10), rel=1e-6)


def test_mde_empty_arm():
    assert mde_proportion(0.1, 0, 100).error == "control has no observations"
    assert mde_mean(100, 0, std=1.0).error == "treatment has no observations"


def test_mde_zero_variance():
    result = mde_mean(100, 100, std=0.0)
    assert result.error is not None and "zero variance" in result.error


def test_mde_nothing_detectable_below_one():
    result = mde_proportion(0.99, 3, 3)
    assert result.error is not None and math.isnan(result.absolute)


def test_sample_size_zero_effect():
    size = sample_size_proportion(0.1, 0.1)
    assert size.error is not None and math.isinf(size.exact_control)


def test_power_validation():
    with pytest.raises(ValueError):
        sample_size_mean(1.0, 1.0, alpha=0.05, power=0.01)
    with pytest.raises(ValueError):
        sample_size_mean(1.0, 0.0)
