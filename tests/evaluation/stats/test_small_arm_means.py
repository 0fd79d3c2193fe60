"""The always-valid test of means with a small arm: its own sample variance (0 for a canary of
users with no correction, too low for skewed metrics) carried the difference's variance, so a
small arm shipped on chance alone. Checked against Fisher's exact test and by A/A simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from evaluation.stats import AnalysisConfig, ExperimentAggregates, analyze
from evaluation.stats.sequential import msprt_means
from evaluation.stats.sufficient import MeanStats


def _aggregates(control: np.ndarray, treatment: np.ndarray) -> ExperimentAggregates:
    """Arms of per-unit values, one slice per row of the arrays (a simulation's runs)."""
    runs = control.shape[0]
    return ExperimentAggregates(
        n=np.array([np.full(runs, control.shape[1]), np.full(runs, treatment.shape[1])],
                   float)[:, None, :],
        sums=np.array([control.sum(1), treatment.sum(1)])[:, None, :],
        sum_squares=np.array([(control ** 2).sum(1), (treatment ** 2).sum(1)])[:, None, :],
        is_proportion=np.array([False]), arm_names=("control", "t"), metric_names=("m",),
        slice_names=tuple(map(str, range(runs))))


def test_a_canary_of_six_users_with_no_correction_is_not_significant() -> None:
    """344 users at 2 predictions each, 32 corrected, against 6 users with none: Fisher's exact
    test on the predictions gives p = 1; the always-valid p was 0.005 and shipped the arm."""
    control = np.zeros((1, 344))
    control[0, :32] = 0.5  # a user with one of two predictions corrected
    result = analyze(_aggregates(control, np.zeros((1, 6))))
    assert stats.fisher_exact([[0, 12], [32, 656]]).pvalue == pytest.approx(1.0)
    assert result.sequential_p_value[0, 0, 0] > 0.05
    assert result.sequential_ci_low[0, 0, 0] < 0 < result.sequential_ci_high[0, 0, 0]
    scalar = msprt_means(MeanStats.from_values(control[0]), MeanStats.from_values(np.zeros(6)))
    assert not scalar.reject and scalar.p_value == pytest.approx(
        result.sequential_p_value[0, 0, 0])


@pytest.mark.parametrize("draw", [
    lambda rng, size: rng.lognormal(0.0, 1.5, size),
    lambda rng, size: rng.pareto(1.5, size),
    lambda rng, size: (rng.random(size) < 0.01).astype(float),
], ids=["lognormal", "pareto", "rare-events"])
def test_an_a_a_test_at_a_99_to_1_split_stays_below_alpha_whatever_the_looks(draw) -> None:  # noqa: ANN001
    """A/A runs looked at as the small arm grows from 2 to 20 units: the share of runs that
    ever cross the boundary stays at most alpha (it was 37-87 % for these metrics)."""
    rng = np.random.default_rng(7)
    runs, looks = 1500, (2, 3, 5, 8, 12, 20)
    control, treatment = draw(rng, (runs, 99 * looks[-1])), draw(rng, (runs, looks[-1]))
    ever = np.zeros(runs, bool)
    for n in looks:
        result = analyze(_aggregates(control[:, :99 * n], treatment[:, :n]),
                         AnalysisConfig(sequential_tuning_n=5000))
        ever |= np.nan_to_num(result.sequential_p_value[0, 0], nan=1.0) <= 0.05
    assert ever.mean() <= 0.05


def test_arms_of_equal_sizes_keep_their_own_variances() -> None:
    rng = np.random.default_rng(3)
    control, treatment = rng.normal(100, 15, (1, 400)), rng.normal(100, 5, (1, 400))
    result = analyze(_aggregates(control, treatment))
    scalar = msprt_means(MeanStats.from_values(control[0]), MeanStats.from_values(treatment[0]))
    assert scalar.standard_error == pytest.approx(
        np.sqrt(control.var(ddof=1) / 400 + treatment.var(ddof=1) / 400))
    assert result.sequential_p_value[0, 0, 0] == pytest.approx(scalar.p_value)
