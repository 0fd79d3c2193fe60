"""Additive sufficient statistics and the mergeable latency histogram."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.stats import HistogramLayout, LatencyHistogram, MeanStats, ProportionStats


def test_proportion_stats_merge_and_moments():
    hours = [ProportionStats(100, 12), ProportionStats(250, 31), ProportionStats(0, 0)]
    total = sum(hours)
    assert total == ProportionStats(350, 43)
    assert total.mean == pytest.approx(43 / 350)
    assert total.variance == pytest.approx((43 / 350) * (1 - 43 / 350))


def test_proportion_stats_from_outcomes():
    stats = ProportionStats.from_outcomes([True, False, True, True])
    assert (stats.n, stats.successes) == (4, 3)
    with pytest.raises(ValueError, match="0/1"):
        ProportionStats.from_outcomes([0, 2])


def test_proportion_stats_rejects_impossible_counts():
    with pytest.raises(ValueError):
        ProportionStats(10, 11)
    with pytest.raises(ValueError):
        ProportionStats(-1, 0)
    with pytest.raises(ValueError, match="whole"):
        ProportionStats(10.5, 1)


def test_empty_proportion_has_nan_mean():
    assert math.isnan(ProportionStats(0, 0).mean)


def test_mean_stats_match_numpy_and_merge_exactly():
    rng = np.random.default_rng(7)
    a, b = rng.gamma(2.0, 30.0, 400), rng.gamma(2.0, 35.0, 600)
    merged = MeanStats.from_values(a) + MeanStats.from_values(b)
    both = np.concatenate([a, b])
    assert merged.n == 1000
    assert merged.mean == pytest.approx(both.mean(), rel=1e-12)
    assert merged.variance == pytest.approx(both.var(ddof=1), rel=1e-10)
    assert merged.std == pytest.approx(both.std(ddof=1), rel=1e-10)
    assert sum([MeanStats.from_values(a), MeanStats.from_values(b)]) == merged


def test_mean_stats_with_one_observation_has_no_variance():
    one = MeanStats.from_values([3.0])
    assert one.mean == 3.0
    assert math.isnan(one.variance)


def test_mean_stats_validation():
    with pytest.raises(ValueError):
        MeanStats(0, 1.0, 1.0)
    with pytest.raises(ValueError):
        MeanStats(2, 1.0, -1.0)
    with pytest.raises(ValueError):
        MeanStats(2, math.inf, 1.0)


def test_histogram_quantiles_within_relative_error():
    layout = HistogramLayout(lowest=0.01, highest=1e6, relative_error=0.01)
    rng = np.random.default_rng(3)
    latencies = rng.lognormal(mean=3.0, sigma=1.0, size=50_000)
    hist = LatencyHistogram.from_values(latencies, layout)
    qs = np.array([0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0])
    exact = np.quantile(latencies, qs)
    estimate = hist.quantile(qs)
    assert np.all(np.abs(estimate - exact) <= 0.01 * exact + 1e-12)
    assert hist.count == latencies.size


def test_histogram_quantile_interpolates_like_the_offline_percentile_at_few_values():
    # Offline tests and guardrails take numpy's linear percentile; the order statistic below
    # it (the second largest of ten) read a p99 27 % lower on lognormal latencies.
    layout = HistogramLayout(lowest=0.01, highest=1e6, relative_error=0.01)
    for seed in range(20):
        latencies = np.random.default_rng(seed).lognormal(3.0, 0.8, 10)
        estimate = LatencyHistogram.from_values(latencies, layout).quantile([0.5, 0.95, 0.99])
        exact = np.percentile(latencies, [50, 95, 99])
        assert np.all(np.abs(estimate - exact) <= 0.01 * exact)


def test_histogram_relative_error_bound_is_tight_at_bucket_edges():
    # Every value of a bucket (lo, hi] is within a of 2 lo hi / (lo + hi) (DDSketch, VLDB 2019).
    layout = HistogramLayout(relative_error=0.02)
    edges = layout.edges
    values = np.concatenate([edges[1:-1] * (1 + 1e-12), edges[2:]])
    buckets = layout.bucket_of(values)
    reported = layout.representatives[buckets]
    assert np.max(np.abs(reported - values) / values) <= 0.02 + 1e-9


def test_histograms_merge_like_the_concatenated_data():
    rng = np.random.default_rng(11)
    a, b = rng.exponential(40.0, 3000), rng.exponential(55.0, 2000)
    merged = LatencyHistogram.from_values(a) + LatencyHistogram.from_values(b)
    assert merged == LatencyHistogram.from_values(np.concatenate([a, b]))
    assert sum([LatencyHistogram.from_values(a), LatencyHistogram.from_values(b)]) == merged


def test_histogram_out_of_range_values_are_clamped():
    layout = HistogramLayout(lowest=1.0, highest=100.0, relative_error=0.05)
    hist = LatencyHistogram.from_values([0.0, 0.5, 1e9], layout)
    assert hist.counts[0] == 2 and hist.counts[-1] == 1
    assert hist.quantile(0.0) == 1.0
    assert hist.quantile(1.0) == layout.edges[-1]


def test_empty_histogram_quantile_is_nan():
    assert math.isnan(LatencyHistogram.empty().quantile(0.5))


def test_histograms_of_different_layouts_do_not_merge():
    with pytest.raises(ValueError, match="layouts"):
        LatencyHistogram.empty() + LatencyHistogram.empty(HistogramLayout(relative_error=0.05))


def test_histogram_validation():
    with pytest.raises(ValueError):
        LatencyHistogram(np.zeros(3))
    with pytest.raises(ValueError):
        LatencyHistogram.from_values([np.nan])
    with pytest.raises(ValueError):
        LatencyHistogram.empty().quantile(1.5)
    with pytest.raises(ValueError):
        HistogramLayout(lowest=0.0)
