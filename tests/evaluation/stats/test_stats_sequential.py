"""mSPRT: formula checks and A/A simulations under hourly peeking.

Johari, Pekelis and Walsh, "Always Valid Inference" (arXiv 1512.04922), with a normal mixture
N(0, tau2) over the difference: Lambda = sqrt(V / (V + tau2)) exp(tau2 d^2 / (2 V (V + tau2))).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

from evaluation.stats import (
    MeanStats,
    ProportionStats,
    SequentialConfig,
    msprt_arrays,
    msprt_means,
    msprt_proportions,
    proportion_arrays,
    welch_arrays,
)
from evaluation.stats.sequential import optimal_mixture_ratio

EXPERIMENTS = 500
LOOKS = 48  # one look per hour for two days
ALPHA = 0.05
# Binomial standard error of a rate near 0.05 over 500 experiments is about 0.01.
TOLERANCE = 0.02


def test_likelihood_ratio_and_boundary_golden():
    # d = 0.01, V = 0.05/1e4 + 0.05/1e4 = 1e-5, tau2 = 1e-4:
    # log Lambda = 0.5 log(1e-5 / 1.1e-4) + 1e-4 * 1e-4 / (2 * 1e-5 * 1.1e-4)
    #            = -1.1989476 + 4.5454545 = 3.3465069.
    config = SequentialConfig(alpha=0.05, mixture_variance=1e-4)
    # Known variances (a proportion's): the mixture exactly as the paper writes it.
    arrays = msprt_arrays([0.01], [0.05], [10_000], [0.05], [10_000], config, estimated=False)
    v, tau2, d = 1e-5, 1e-4, 0.01
    log_lr = 0.5 * math.log(v / (v + tau2)) + tau2 * d * d / (2 * v * (v + tau2))
    assert arrays.log_likelihood_ratio[0] == pytest.approx(log_lr, rel=1e-12)
    assert log_lr == pytest.approx(3.3465069, abs=1e-6)
    assert arrays.p_value[0] == pytest.approx(math.exp(-log_lr), rel=1e-12)
    half = math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(20) + math.log((v + tau2) / v)))
    assert arrays.ci_low[0] == pytest.approx(d - half, rel=1e-12)
    assert arrays.z_boundary[0] == pytest.approx(half / math.sqrt(v), rel=1e-12)


def test_interval_is_the_set_of_unrejected_differences():
    # The always-valid CI ends exactly where the likelihood ratio of theta0 reaches 1/alpha.
    config = SequentialConfig(alpha=0.1, mixture_variance=4e-5)
    result = msprt_proportions(ProportionStats(8000, 800), ProportionStats(8000, 880), config)
    v = result.standard_error**2
    tau2 = result.mixture_variance

    def log_lr_minus_threshold(theta0: float) -> float:
        d = result.difference - theta0
        return (
            0.5 * math.log(v / (v + tau2)) + tau2 * d * d / (2 * v * (v + tau2)) - math.log(1 / 0.1)
        )

    upper = optimize.brentq(log_lr_minus_threshold, result.difference, 1.0, xtol=1e-15)
    lower = optimize.brentq(log_lr_minus_threshold, -1.0, result.difference, xtol=1e-15)
    assert result.ci_high == pytest.approx(upper, abs=1e-12)
    assert result.ci_low == pytest.approx(lower, abs=1e-12)
    assert result.threshold == pytest.approx(10.0)


def test_p_value_below_alpha_exactly_when_zero_is_outside_the_interval():
    rng = np.random.default_rng(21)
    d = rng.normal(0, 0.01, 2000)
    arrays = msprt_arrays(d, 0.09, 5000, 0.09, 5000)
    excluded = (arrays.ci_low > 0) | (arrays.ci_high < 0)
    assert np.array_equal(arrays.p_value < ALPHA, excluded)
    assert excluded.any() and not excluded.all()


def test_optimal_mixture_ratio_is_the_fixed_point():
    r = optimal_mixture_ratio(0.05)
    assert r == pytest.approx(2 * math.log(20) + math.log1p(r), abs=1e-12)

    # And the half-width at a fixed V is smallest there.
    def width(ratio: float) -> float:
        return (1 + ratio) / ratio * (2 * math.log(20) + math.log1p(ratio))

    assert width(r) < width(r * 0.9) and width(r) < width(r * 1.1)


def test_running_minimum_and_intersection_with_previous_look():
    config = SequentialConfig(mixture_variance=1e-4)
    first = msprt_proportions(ProportionStats(2000, 200), ProportionStats(2000, 260), config)
    second = msprt_proportions(
        ProportionStats(4000, 400), ProportionStats(4000, 430), config, previous=first
    )
    alone = msprt_proportions(ProportionStats(4000, 400), ProportionStats(4000, 430), config)
    assert second.p_value == min(first.p_value, alone.p_value)
    assert second.ci_low == max(first.ci_low, alone.ci_low)
    assert second.ci_high == min(first.ci_high, alone.ci_high)


def test_msprt_means_uses_the_sample_variances():
    rng = np.random.default_rng(1)
    control, treatment = (
        MeanStats.from_values(rng.normal(100, 15, 3000)),
        MeanStats.from_values(rng.normal(103, 15, 3000)),
    )
    result = msprt_means(control, treatment)
    assert result.standard_error == pytest.approx(
        math.sqrt(control.variance / 3000 + treatment.variance / 3000)
    )
    assert result.reject and result.ci_low > 0


def test_msprt_control_without_observations():
    result = msprt_proportions(ProportionStats(0, 0), ProportionStats(10, 3))
    assert result.error == "control has no observations"
    assert math.isnan(result.p_value) and not result.reject


def test_msprt_treatment_without_observations():
    result = msprt_means(MeanStats.from_values([1.0, 2.0]), MeanStats(0, 0.0, 0.0))
    assert result.error == "treatment has no observations"


def test_msprt_mean_with_one_observation():
    result = msprt_means(MeanStats.from_values([1.0]), MeanStats.from_values([1.0, 2.0]))
    assert result.error is not None and result.error.startswith("control needs at least two")


def test_msprt_zero_variance():
    result = msprt_proportions(ProportionStats(100, 100), ProportionStats(100, 100))
    assert result.error is not None and "zero variance" in result.error


def _ever_rejected(p_values: np.ndarray) -> float:
    """Share of experiments (rows) whose p-value fell to alpha at any look (column)."""
    return float(np.mean(np.nan_to_num(p_values, nan=1.0).min(axis=1) <= ALPHA))


def test_aa_proportions_stay_below_alpha_while_naive_peeking_does_not():
    # 500 A/A experiments, both arms at a 10 % rate, 200 units per arm per hour, 48 hourly looks.
    rng = np.random.default_rng(20260101)
    per_hour = 200
    s_c = rng.binomial(per_hour, 0.10, (EXPERIMENTS, LOOKS)).cumsum(axis=1)
    s_t = rng.binomial(per_hour, 0.10, (EXPERIMENTS, LOOKS)).cumsum(axis=1)
    n = per_hour * np.arange(1, LOOKS + 1)[None, :]
    naive = proportion_arrays(n, s_c, n, s_t, ALPHA)
    p_c, p_t = s_c / n, s_t / n
    sequential = msprt_arrays(
        p_t - p_c,
        p_c * (1 - p_c),
        n,
        p_t * (1 - p_t),
        n,
        SequentialConfig(alpha=ALPHA, tuning_n=5000),
    )
    naive_rate = _ever_rejected(naive.p_value)
    sequential_rate = _ever_rejected(sequential.p_value)
    # The last look alone is a valid fixed-horizon test.
    assert _ever_rejected(naive.p_value[:, -1:]) <= ALPHA + TOLERANCE
    assert sequential_rate <= ALPHA + TOLERANCE
    assert naive_rate > 2 * ALPHA  # peeking every hour inflates the error rate several times


def test_aa_means_stay_below_alpha_while_naive_peeking_does_not():
    # Skewed (exponential, like latency) A/A data, 100 observations per arm per hour.
    rng = np.random.default_rng(77)
    per_hour = 100

    def arm() -> tuple[np.ndarray, np.ndarray]:
        values = rng.exponential(80.0, (EXPERIMENTS, LOOKS, per_hour))
        return values.sum(axis=2).cumsum(axis=1), (values * values).sum(axis=2).cumsum(axis=1)

    (sum_c, ss_c), (sum_t, ss_t) = arm(), arm()
    n = per_hour * np.arange(1, LOOKS + 1)[None, :].astype(float)
    naive = welch_arrays(n, sum_c, ss_c, n, sum_t, ss_t, ALPHA)
    sequential = msprt_arrays(
        naive.difference,
        naive.control_variance,
        n,
        naive.treatment_variance,
        n,
        SequentialConfig(alpha=ALPHA),
    )
    assert _ever_rejected(sequential.p_value) <= ALPHA + TOLERANCE
    assert _ever_rejected(naive.p_value) > 2 * ALPHA


def test_msprt_detects_a_real_effect():
    # 10 % -> 12 %, 500 units per arm per hour: the test stops well within two days.
    rng = np.random.default_rng(3)
    experiments, per_hour = 200, 500
    s_c = rng.binomial(per_hour, 0.10, (experiments, LOOKS)).cumsum(axis=1)
    s_t = rng.binomial(per_hour, 0.12, (experiments, LOOKS)).cumsum(axis=1)
    n = per_hour * np.arange(1, LOOKS + 1)[None, :]
    p_c, p_t = s_c / n, s_t / n
    sequential = msprt_arrays(p_t - p_c, p_c * (1 - p_c), n, p_t * (1 - p_t), n)
    assert _ever_rejected(sequential.p_value) > 0.9
