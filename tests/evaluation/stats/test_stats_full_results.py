"""The vectorised full-results pass agrees with the scalar tests and with statsmodels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from evaluation.stats import (
    AnalysisConfig,
    ExperimentAggregates,
    MeanStats,
    ProportionStats,
    SequentialConfig,
    analyze,
    beta_binomial_test,
    mde_mean,
    mde_proportion,
    msprt_means,
    msprt_proportions,
    sample_ratio_mismatch,
    two_proportion_ztest,
    welch_ttest,
)
from evaluation.stats.bayesian_means import gaussian_test

ARMS, METRICS, SLICES = 3, 4, 5
IS_PROPORTION = np.array([True, False, True, False])


def _raw_rows(seed: int = 0, rows: int = 40_000):
    rng = np.random.default_rng(seed)
    arm = rng.integers(0, ARMS, rows)
    metric = rng.integers(0, METRICS, rows)
    slice_ = rng.integers(0, SLICES, rows)
    lift = 1.0 + 0.05 * arm
    value = np.where(
        IS_PROPORTION[metric],
        rng.random(rows) < 0.2 * lift,
        rng.gamma(2.0, 40.0 * lift),
    ).astype(float)
    return arm, metric, slice_, value


@pytest.fixture(scope="module")
def aggregates() -> ExperimentAggregates:
    arm, metric, slice_, value = _raw_rows()
    return ExperimentAggregates.from_long_rows(
        arm,
        metric,
        slice_,
        value,
        IS_PROPORTION,
        n_arms=ARMS,
        n_slices=SLICES,
        metric_names=["accepted", "latency_ms", "exact_match", "edit_distance"],
    )


def test_from_long_rows_matches_a_plain_loop(aggregates):
    arm, metric, slice_, value = _raw_rows()
    for a, m, s in [(0, 0, 0), (2, 1, 4), (1, 3, 2)]:
        chosen = value[(arm == a) & (metric == m) & (slice_ == s)]
        assert aggregates.n[a, m, s] == chosen.size
        assert aggregates.means[a, m, s] == pytest.approx(chosen.mean(), rel=1e-12)
        n, total, squares = (x[a, m, s] for x in (aggregates.n, aggregates.sums,
                                                  aggregates.sum_squares))
        variance = (squares - total * total / n) / (n - 1)
        assert variance == pytest.approx(chosen.var(ddof=1), rel=1e-10)


def test_aggregates_merge_by_addition(aggregates):
    arm, metric, slice_, value = _raw_rows()
    half = arm.size // 2
    parts = [
        ExperimentAggregates.from_long_rows(
            arm[sl],
            metric[sl],
            slice_[sl],
            value[sl],
            IS_PROPORTION,
            n_arms=ARMS,
            n_slices=SLICES,
            metric_names=aggregates.metric_names,
        )
        for sl in (slice(0, half), slice(half, None))
    ]
    merged = parts[0] + parts[1]
    np.testing.assert_array_equal(merged.n, aggregates.n)
    np.testing.assert_allclose(merged.means, aggregates.means, rtol=1e-12)
    # Both hold sums about their own shifts; the centred second moments must agree.
    def m2(x: ExperimentAggregates) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(x.n > 0, x.sum_squares - x.sums**2 / x.n, 0.0)

    np.testing.assert_allclose(m2(merged), m2(aggregates), rtol=1e-10, atol=1e-9)


def test_every_element_matches_the_scalar_functions(aggregates):
    config = AnalysisConfig()
    results = analyze(aggregates, config)
    assert results.shape == (ARMS - 1, METRICS, SLICES)
    # Bonferroni over the ARMS - 1 treatment arms: each interval at alpha / (ARMS - 1).
    sequential = SequentialConfig(alpha=config.alpha / (ARMS - 1),
                                  tuning_n=config.sequential_tuning_n)
    for k, m, s in np.ndindex(results.shape):
        if IS_PROPORTION[m]:
            control = ProportionStats(int(aggregates.n[0, m, s]), int(aggregates.sums[0, m, s]))
            treatment = ProportionStats(
                int(aggregates.n[k + 1, m, s]), int(aggregates.sums[k + 1, m, s])
            )
            single = two_proportion_ztest(control, treatment)
            bayes = beta_binomial_test(control, treatment)
            seq = msprt_proportions(control, treatment, sequential)
            mde = mde_proportion(control.mean, control.n, treatment.n).absolute
            assert results.chance_to_win[k, m, s] == pytest.approx(bayes.chance_to_win, rel=1e-12)
            assert results.expected_loss[k, m, s] == pytest.approx(bayes.expected_loss, rel=1e-9)
        else:
            control, treatment = (
                MeanStats(
                    int(aggregates.n[a, m, s]),
                    aggregates.sums[a, m, s],
                    aggregates.sum_squares[a, m, s],
                    aggregates.shift[a, m, s],
                )
                for a in (0, k + 1)
            )
            single = welch_ttest(control, treatment)
            seq = msprt_means(control, treatment, sequential)
            mde = mde_mean(control.n, treatment.n, control.std, treatment_std=treatment.std)
            mde = mde.absolute
            gauss = gaussian_test(control, treatment)
            assert results.chance_to_win[k, m, s] == pytest.approx(gauss.chance_to_win, rel=1e-12)
            assert results.credible_ci_low[k, m, s] == pytest.approx(gauss.ci_low, rel=1e-12)
        assert results.p_value[k, m, s] == pytest.approx(single.p_value, rel=1e-10)
        assert results.ci_low[k, m, s] == pytest.approx(single.ci_low, rel=1e-10)
        assert results.relative_ci_high[k, m, s] == pytest.approx(
            single.relative_ci_high, rel=1e-10
        )
        assert results.sequential_p_value[k, m, s] == pytest.approx(
            min(1.0, seq.p_value * (ARMS - 1)), rel=1e-10)
        assert results.sequential_ci_low[k, m, s] == pytest.approx(seq.ci_low, rel=1e-10)
        assert results.mde[k, m, s] == pytest.approx(mde, rel=1e-10)
        assert results.error[k, m, s] is None


def _per_slice(p: np.ndarray, method: str) -> np.ndarray:
    """statsmodels' multipletests over each slice's treatments x metrics, NaN left out."""
    out = np.full(p.shape, np.nan)
    for s in range(p.shape[2]):
        family = p[:, :, s]
        valid = ~np.isnan(family)
        if valid.any():
            out[:, :, s][valid] = multipletests(family[valid], method=method)[1]
    return out


def test_adjustments_are_one_family_per_slice(aggregates):
    results = analyze(aggregates)
    np.testing.assert_allclose(results.p_holm, _per_slice(results.p_value, "holm"), rtol=1e-12)
    np.testing.assert_allclose(results.p_bh, _per_slice(results.p_value, "fdr_bh"), rtol=1e-12)
    assert results.reject_bh.sum() >= results.reject_holm.sum()


def test_other_slices_do_not_change_a_slices_adjusted_p_values(aggregates):
    # Old code adjusted over every slice at once: the 40 comparisons here (8 per slice) gave
    # slice 0 Holm p-values up to 5 times those of slice 0 analysed alone.
    alone = ExperimentAggregates(aggregates.n[:, :, :1], aggregates.sums[:, :, :1],
                                 aggregates.sum_squares[:, :, :1], IS_PROPORTION)
    full, single = analyze(aggregates), analyze(alone)
    assert not np.isnan(single.p_holm).all()
    np.testing.assert_allclose(full.p_holm[:, :, :1], single.p_holm, rtol=1e-12)
    np.testing.assert_allclose(full.p_bh[:, :, :1], single.p_bh, rtol=1e-12)
    np.testing.assert_array_equal(full.reject_holm[:, :, :1], single.reject_holm)


def test_degenerate_slices_are_reported_and_left_out_of_adjustments(aggregates):
    n = aggregates.n.copy()
    sums = aggregates.sums.copy()
    squares = aggregates.sum_squares.copy()
    n[0, :, 0] = sums[0, :, 0] = squares[0, :, 0] = 0  # control empty in slice 0
    n[1, 1, 1], sums[1, 1, 1], squares[1, 1, 1] = 1, 50.0, 2500.0  # one latency observation
    broken = ExperimentAggregates(n, sums, squares, IS_PROPORTION)
    results = analyze(broken)
    assert set(results.error[:, :, 0].ravel()) == {"control has no observations"}
    assert results.error[0, 1, 1].startswith("treatment needs at least two")
    assert np.isnan(results.p_holm[:, :, 0]).all()
    assert np.isnan(results.sequential_p_value[:, :, 0]).all()
    assert np.isnan(results.chance_to_win[:, 0, 0]).all()
    expected = _per_slice(results.p_value, "holm")
    np.testing.assert_allclose(results.p_holm, expected, rtol=1e-12)


def test_records_are_json_ready(aggregates):
    results = analyze(aggregates)
    records = results.to_records()
    assert len(records) == (ARMS - 1) * METRICS * SLICES
    text = json.dumps(records, allow_nan=False)
    first = json.loads(text)[0]
    assert first["control"] == "control" and first["treatment"] == "treatment_1"
    assert first["metric"] == "accepted" and first["kind"] == "proportion"
    assert first["slice"] == "slice_0"
    assert first["p_value"] == results.p_value[0, 0, 0]
    latency = next(r for r in records if r["metric"] == "latency_ms")
    assert 0 < latency["chance_to_win"] < 1 and latency["kind"] == "mean"


def test_srm_per_slice():
    units = np.array([[1000, 500, 700], [1010, 498, 550], [990, 505, 700]])
    n = np.ones((3, 1, 3)) * 100
    aggregates = ExperimentAggregates(n, n * 0.1, n * 0.1, [True])
    results = analyze(aggregates, units=units, weights=[1, 1, 1])
    for s in range(3):
        expected = sample_ratio_mismatch(units[:, s], [1, 1, 1])
        assert results.srm_p_value[s] == pytest.approx(expected.p_value, rel=1e-12)
    assert results.srm_mismatch.tolist() == [False, False, True]
    assert "srm_p_value" in results.to_records()[0]
    assert analyze(aggregates).srm_p_value is None


def test_aggregates_validation():
    with pytest.raises(ValueError):
        ExperimentAggregates(np.ones((1, 1, 1)), np.ones((1, 1, 1)), np.ones((1, 1, 1)), [True])
    with pytest.raises(ValueError, match="successes"):
        ExperimentAggregates(
            np.ones((2, 1, 1)), np.full((2, 1, 1), 2.0), np.ones((2, 1, 1)), [True]
        )
    with pytest.raises(ValueError, match="names"):
        ExperimentAggregates(
            np.ones((2, 1, 1)), np.ones((2, 1, 1)), np.ones((2, 1, 1)), [True], arm_names=("a", "a")
        )
    with pytest.raises(ValueError, match="codes"):
        ExperimentAggregates.from_long_rows(
            [0, 2], [0, 0], [0, 0], [1.0, 0.0], [True], n_arms=2, n_slices=1
        )
    with pytest.raises(ValueError):
        AnalysisConfig(power=0.01)
