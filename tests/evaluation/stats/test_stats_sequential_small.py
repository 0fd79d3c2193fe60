"""The always-valid test where its normal theory is weakest: means from a few observations per
arm (a Student t statistic) and a proportion in a small canary arm. A/A simulations through
`analyze` (the pass /results runs) with a look every hour: a look rejects as the decision's
verdict does, when the always-valid interval excludes 0. Ville's inequality promises at most
alpha over any number of looks; before these fixes, 12 % and 6.4 %."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from evaluation.stats import AnalysisConfig, ExperimentAggregates, ProportionStats, analyze
from evaluation.stats.sequential import (
    SequentialConfig,
    _mixture,
    msprt_proportions,
    t_calibrated,
)

ALPHA, LOOKS = 0.05, 50


def _ever(n: np.ndarray, s: np.ndarray, ss: np.ndarray, proportion: bool,
          config: AnalysisConfig, ever: np.ndarray) -> None:
    result = analyze(ExperimentAggregates(n.copy(), s.copy(), ss.copy(), [proportion]), config)
    low, high = result.sequential_ci_low[0, 0], result.sequential_ci_high[0, 0]
    ever |= np.nan_to_num((low > 0) | (high < 0), nan=0).astype(bool)


def test_means_from_two_observations_a_look_keep_the_false_positive_rate() -> None:
    # N(0, 1) in both arms, 2 new observations per arm each look, expected_sample_per_arm 10
    # (the smallest the API takes): the arms' sample variances come from a handful of values.
    rng, runs, per_look = np.random.default_rng(5), 4000, 2
    n, s, ss = (np.zeros((2, 1, runs)) for _ in range(3))
    ever = np.zeros(runs, dtype=bool)
    config = AnalysisConfig(sequential_tuning_n=10)
    for _ in range(LOOKS):
        draws = rng.normal(0.0, 1.0, (2, 1, runs, per_look))
        n += per_look
        s += draws.sum(axis=-1)
        ss += (draws * draws).sum(axis=-1)
        _ever(n, s, ss, False, config, ever)
    # Binomial standard error at 5 % over 4000 runs: 0.0034 (it was 0.12 before).
    assert ever.mean() <= ALPHA + 0.01


def test_a_two_percent_canary_arm_keeps_the_false_positive_rate() -> None:
    # 1000 units an hour, 2 % to the treatment, both at a 5 % rate, expected 500 per arm.
    rng, runs = np.random.default_rng(1), 3000
    n, s = np.zeros((2, 1, runs)), np.zeros((2, 1, runs))
    ever = np.zeros(runs, dtype=bool)
    config = AnalysisConfig(sequential_tuning_n=500)
    for _ in range(LOOKS):
        for arm, share in enumerate((0.98, 0.02)):
            units = rng.binomial(1000, share, runs)
            n[arm, 0] += units
            s[arm, 0] += rng.binomial(units, 0.05)
        _ever(n, s, s, True, config, ever)
    assert ever.mean() <= ALPHA + 0.01  # 0.064 before


def test_a_canary_at_zero_is_no_surer_than_fisher_s_exact_test_at_one_look() -> None:
    # 115/1953 against 0/54: Fisher's exact p is 0.071; the always-valid p was 0.047.
    fisher = stats.fisher_exact([[115, 1953 - 115], [0, 54]]).pvalue
    assert fisher == pytest.approx(0.071, abs=0.001)
    result = msprt_proportions(ProportionStats(1953, 115), ProportionStats(54, 0),
                               SequentialConfig(tuning_n=500))
    assert result.p_value >= fisher and not result.reject


@pytest.mark.parametrize("df", [1.0, 3.0, 95.0])
def test_an_estimated_variance_is_inflated_as_a_t_interval_is_wider_than_a_z_one(
        df: float) -> None:
    config = SequentialConfig(alpha=ALPHA, mixture_variance=0.5)
    d, v, tau2, ok = (np.array([x]) for x in (2.0, 0.2, 0.5, 0))
    t = t_calibrated(d, v, tau2, np.array([df]), config, ok)
    factor = (stats.t.isf(ALPHA / 2, df) / stats.norm.isf(ALPHA / 2)) ** 2
    inflated = _mixture(d, v * factor, tau2, config, ok)
    assert t.variance[0] == 0.2  # the plain V is what it reports
    assert (t.p_value[0], t.ci_low[0], t.ci_high[0]) == pytest.approx(
        (inflated.p_value[0], inflated.ci_low[0], inflated.ci_high[0]), rel=1e-12)
    assert t.z_boundary[0] == pytest.approx((t.ci_high[0] - 2.0) / np.sqrt(0.2), rel=1e-12)
    known = t_calibrated(d, v, tau2, np.array([np.inf]), config, ok)
    assert known.p_value[0] == _mixture(d, v, tau2, config, ok).p_value[0] < t.p_value[0]
    # A printed t table's 97.5 % quantiles over z's 1.95996.
    assert factor == pytest.approx(({1.0: 12.706, 3.0: 3.182, 95.0: 1.985}[df] / 1.95996) ** 2,
                                   rel=1e-3)
