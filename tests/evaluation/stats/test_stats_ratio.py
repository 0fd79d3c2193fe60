"""Ratio-of-sums metrics per unit by the delta method, checked against the direct formula,
a bootstrap over units, and the Welch statistic of the two arms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.stats import AnalysisConfig, ExperimentAggregates, analyze, ratio_stats


def _clustered(n: int, seed: int, rate_a: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Users with many sessions each and a click rate of their own (Beta(a, 4)): clicks within
    one user are correlated, which is what per-request variances miss."""
    rng = np.random.default_rng(seed)
    sessions = rng.poisson(5, n) + 1.0
    rates = rng.beta(rate_a, 4.0, n)
    clicks = rng.binomial(sessions.astype(int), rates).astype(float)
    return clicks, sessions


def test_delta_method_matches_the_direct_formula() -> None:
    y, x = _clustered(400, seed=1)
    got = ratio_stats(y, x)
    n, r = y.size, y.sum() / x.sum()
    cov = np.cov(y, x)  # ddof = 1
    # Var(R) = (s_yy - 2 R s_xy + R^2 s_xx) / (n mean(x)^2)  (Deng et al., KDD 2018, eq. 3)
    direct = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (n * x.mean() ** 2)
    assert got.error is None and got.n == n
    assert got.ratio == pytest.approx(r, rel=1e-14)
    assert got.variance_of_ratio == pytest.approx(direct, rel=1e-10)
    stat = got.as_mean_stats()
    assert stat.mean == pytest.approx(r, rel=1e-14)
    assert stat.variance / stat.n == pytest.approx(direct, rel=1e-10)


def test_delta_method_matches_a_bootstrap_over_units_and_not_per_request() -> None:
    y, x = _clustered(400, seed=2)
    got = ratio_stats(y, x)
    rng = np.random.default_rng(7)
    picks = rng.integers(0, y.size, size=(4000, y.size))
    boot = y[picks].sum(axis=1) / x[picks].sum(axis=1)
    # 4000 resamples estimate a variance to about 2 %; the delta method is first order.
    assert got.variance_of_ratio == pytest.approx(boot.var(ddof=1), rel=0.1)
    # Treating every session as independent understates it by the design effect (about 1.8).
    per_request = got.ratio * (1 - got.ratio) / x.sum()
    assert per_request < 0.7 * got.variance_of_ratio


def test_welch_on_linearised_ratios_is_the_delta_method_z() -> None:
    yc, xc = _clustered(300, seed=3)
    yt, xt = _clustered(280, seed=4, rate_a=1.3)
    c, t = ratio_stats(yc, xc), ratio_stats(yt, xt)
    mc, mt = c.as_mean_stats(), t.as_mean_stats()
    aggregates = ExperimentAggregates(
        np.array([[[mc.n]], [[mt.n]]]), np.array([[[mc.sum]], [[mt.sum]]]),
        np.array([[[mc.sum_squares]], [[mt.sum_squares]]]), [False],
        ("control", "treatment"), ("ctr",), ("all",),
        np.array([[[mc.shift]], [[mt.shift]]]))
    (rec,) = analyze(aggregates, AnalysisConfig()).to_records()
    se = math.sqrt(c.variance_of_ratio + t.variance_of_ratio)
    assert rec["difference"] == pytest.approx(t.ratio - c.ratio, rel=1e-12)
    assert rec["statistic"] == pytest.approx((t.ratio - c.ratio) / se, rel=1e-9)
    assert rec["sequential_p_value"] is not None and rec["chance_to_win"] is not None


def test_degenerate_ratios_say_why() -> None:
    one = ratio_stats([1.0], [2.0])
    assert one.error == "one unit: no variance to test with" and one.ratio == 0.5
    assert one.as_mean_stats().n == 1 and math.isnan(one.as_mean_stats().variance)
    zero = ratio_stats([1.0, 2.0], [0.0, 0.0])
    assert zero.error == "the denominator sums to zero" and math.isnan(zero.ratio)
    assert zero.as_mean_stats().n == 0
    with pytest.raises(ValueError):
        ratio_stats([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        ratio_stats([1.0, math.nan], [1.0, 1.0])


def test_zeros_are_units_at_zero_over_zero() -> None:
    """`zeros` more units that reported neither part: the same as those units sent as 0 and 0
    (the direct formula over the padded arrays), without the arrays."""
    y, x = _clustered(300, seed=5)
    padded = ratio_stats(np.r_[y, np.zeros(200)], np.r_[x, np.zeros(200)])
    got = ratio_stats(y, x, zeros=200)
    assert (got.n, got.error) == (500, None)
    assert got.ratio == pytest.approx(padded.ratio, rel=1e-14)
    assert got.unit_variance == pytest.approx(padded.unit_variance, rel=1e-12)
    assert ratio_stats([], [], zeros=3).error == "the denominator sums to zero"
    with pytest.raises(ValueError):
        ratio_stats(y, x, zeros=-1)
