"""Benchmark of the statistics package against its anchors (see shared PERFORMANCE.md).

1. Full results for 2 treatments x 10 metrics x 20 slices (400 comparisons) from aggregates:
   frequentist, Bayesian and sequential figures with Holm and BH, in one pass, *and* turned into
   JSON-ready records, since gbstats returns its results as dicts too. Target < 20 ms and
   >= 50x gbstats ``process_experiment_results`` on the same summary statistics (gbstats is a
   benchmark-only anchor: ``pip install --no-deps gbstats==0.8.0`` (its own pins would downgrade
   numpy and pandas); without it the anchor is reported missing).
2. The same from 10 million raw rows (arm, metric, slice, value): our ``np.bincount``
   aggregation plus the full pass, against numpy grouping plus scipy/statsmodels per test.
   Target < 1 s.

Run: ``python benchmarks/bench_stats.py [--rows N] [--repeats R]``. Figures are medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.counts import positive_int  # noqa: E402
from evaluation.stats import AnalysisConfig, ExperimentAggregates, analyze  # noqa: E402
from evaluation.stats.small_samples import SMALL_SAMPLE_NOTE  # noqa: E402

ARMS, METRICS, SLICES = 3, 10, 20
IS_PROPORTION = np.arange(METRICS) < 5  # five 0/1 metrics, five numeric ones


def say(text: str) -> None:
    print(text, flush=True)


def median_time(run: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``repeats`` calls, in seconds (one untimed warm-up call first)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_aggregates(seed: int = 0) -> ExperimentAggregates:
    """Aggregates whose n is shared by all metrics of an (arm, slice), as gbstats expects."""
    rng = np.random.default_rng(seed)
    n = np.repeat(rng.integers(5_000, 20_000, (ARMS, 1, SLICES)), METRICS, axis=1).astype(float)
    rate = (
        rng.uniform(0.05, 0.3, (1, METRICS, SLICES)) * (1 + 0.03 * np.arange(ARMS))[:, None, None]
    )
    successes = rng.binomial(n.astype(np.int64), rate).astype(float)
    shape, scale = 2.0, rng.uniform(20, 60, (1, METRICS, SLICES))
    # Sums of n gamma(shape, scale) draws are gamma(n * shape, scale); the sum of squares is
    # drawn around its expectation, which is all the benchmark needs.
    sums = rng.gamma(n * shape, scale)
    squares = n * shape * (shape + 1) * scale**2 * rng.uniform(0.98, 1.02, n.shape)
    return ExperimentAggregates(
        n,
        np.where(IS_PROPORTION[None, :, None], successes, sums),
        np.where(IS_PROPORTION[None, :, None], successes, squares),
        IS_PROPORTION,
        arm_names=("control", "treatment_1", "treatment_2"),
        metric_names=tuple(f"m{i}" for i in range(METRICS)),
        slice_names=tuple(f"s{i}" for i in range(SLICES)),
    )


def gbstats_payloads(aggregates: ExperimentAggregates) -> dict[str, dict[str, Any]]:
    """The same summary statistics in gbstats' input format, one payload per engine."""
    rows = []
    for s in range(SLICES):
        for a in range(ARMS):
            n = int(aggregates.n[a, 0, s])
            row: dict[str, Any] = {
                "dimension": f"s{s}",
                "variation": str(a),
                "users": n,
                "count": n,
            }
            for m in range(METRICS):
                row[f"m{m}_main_sum"] = float(aggregates.sums[a, m, s])
                row[f"m{m}_main_sum_squares"] = float(aggregates.sum_squares[a, m, s])
            rows.append(row)
    metrics = {
        f"m{m}": {
            "id": f"m{m}",
            "name": f"m{m}",
            "statistic_type": "mean",
            "main_metric_type": "binomial" if IS_PROPORTION[m] else "count",
        }
        for m in range(METRICS)
    }
    payloads = {}
    for label, engine, sequential in (
        ("frequentist", "frequentist", False),
        ("bayesian", "bayesian", False),
        ("sequential", "frequentist", True),
    ):
        payloads[label] = {
            "metrics": metrics,
            "analyses": [
                {
                    "var_names": list(aggregates.arm_names),
                    "var_ids": ["0", "1", "2"],
                    "weights": [1 / 3] * 3,
                    "stats_engine": engine,
                    "sequential_testing_enabled": sequential,
                    "max_dimensions": SLICES,
                }
            ],
            "query_results": [{"rows": rows, "metrics": list(metrics)}],
        }
    return payloads


def bench_aggregates(repeats: int) -> None:
    say("== 1. full results from aggregates: 2 treatments x 10 metrics x 20 slices ==")
    aggregates = random_aggregates()
    config = AnalysisConfig()
    analysis = median_time(lambda: analyze(aggregates, config), repeats)
    results = analyze(aggregates, config)
    records = median_time(results.to_records, repeats)
    # What the ratio compares: numbers in, records out, as gbstats does.
    ours = median_time(lambda: analyze(aggregates, config).to_records(), repeats)
    say(
        f"abvoc analyze (frequentist + Bayesian + mSPRT + Holm + BH, "
        f"{results.p_value.size} comparisons): {analysis * 1e3:8.2f} ms"
    )
    say(f"abvoc to_records (JSON-ready dicts):  {records * 1e3:8.2f} ms")
    say(f"abvoc analyze + to_records:           {ours * 1e3:8.2f} ms  (target < 20 ms)")
    try:
        from gbstats.gbstats import process_experiment_results
    except ImportError:
        say("anchor missing: gbstats is not importable (pip install --no-deps gbstats==0.8.0); "
            "no ratio")
        return
    payloads = gbstats_payloads(aggregates)
    anchor_repeats = max(1, min(3, repeats))
    total = 0.0
    for label, payload in payloads.items():
        say(f"  timing gbstats {label} (median of {anchor_repeats}) ...")
        elapsed = median_time(lambda p=payload: process_experiment_results(p), anchor_repeats)
        total += elapsed
        say(
            f"gbstats process_experiment_results, {label:11s}: {elapsed * 1e3:8.1f} ms  "
            f"ratio {elapsed / ours:7.1f}x  (our single pass + records does all three)"
        )
    say(
        f"gbstats, all three engines:                    {total * 1e3:8.1f} ms  "
        f"ratio {total / ours:7.1f}x  (target >= 50x)"
    )


def raw_rows(rows: int, seed: int = 1) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    arm = rng.integers(0, ARMS, rows, dtype=np.int8)
    metric = rng.integers(0, METRICS, rows, dtype=np.int8)
    slice_ = rng.integers(0, SLICES, rows, dtype=np.int8)
    value = rng.gamma(2.0, 40.0, rows)
    binary = IS_PROPORTION[metric]
    value[binary] = rng.random(int(binary.sum())) < 0.2
    return arm, metric, slice_, value


def ours_from_rows(arm, metric, slice_, value):
    aggregates = ExperimentAggregates.from_long_rows(
        arm, metric, slice_, value, IS_PROPORTION, n_arms=ARMS, n_slices=SLICES
    )
    return analyze(aggregates)


def ours_records_from_rows(arm, metric, slice_, value):
    return ours_from_rows(arm, metric, slice_, value).to_records()


def anchor_from_rows(arm, metric, slice_, value):
    """Numpy grouping, then scipy/statsmodels for each comparison, then multipletests."""
    from scipy import stats
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

    key = (arm.astype(np.intp) * METRICS + metric) * SLICES + slice_
    order = np.argsort(key, kind="stable")
    bounds = np.searchsorted(key[order], np.arange(ARMS * METRICS * SLICES + 1))
    sorted_values = value[order]

    def group(a: int, m: int, s: int) -> np.ndarray:
        i = (a * METRICS + m) * SLICES + s
        return sorted_values[bounds[i] : bounds[i + 1]]

    p_values = []
    for t in range(1, ARMS):
        for m in range(METRICS):
            for s in range(SLICES):
                control, treatment = group(0, m, s), group(t, m, s)
                if min(control.size, treatment.size) < 2:  # too few rows to test (small --rows)
                    p_values.append(np.nan)
                    continue
                if IS_PROPORTION[m]:
                    counts = [int(treatment.sum()), int(control.sum())]
                    nobs = [treatment.size, control.size]
                    _, p = proportions_ztest(counts, nobs)
                    confint_proportions_2indep(
                        counts[0], nobs[0], counts[1], nobs[1], method="wald"
                    )
                else:
                    res = stats.ttest_ind(treatment, control, equal_var=False)
                    res.confidence_interval()
                    p = res.pvalue
                p_values.append(p)
    tested = [p for p in p_values if np.isfinite(p)]
    multipletests(tested, method="holm")
    multipletests(tested, method="fdr_bh")
    return p_values


def bench_raw(rows: int, repeats: int) -> None:
    say(f"== 2. the same from {rows:,} raw rows (arm, metric, slice, value) ==")
    say("  generating rows ...")
    start = time.perf_counter()
    data = raw_rows(rows)
    say(f"  generated in {time.perf_counter() - start:.1f} s")
    say(f"  timing abvoc bincount + analyze + to_records (median of {repeats}) ...")
    ours = median_time(lambda: ours_records_from_rows(*data), repeats)
    key_only = median_time(
        lambda: ExperimentAggregates.from_long_rows(
            *data, IS_PROPORTION, n_arms=ARMS, n_slices=SLICES
        ),
        repeats,
    )
    anchor_repeats = max(1, min(3, repeats))
    say(f"  timing numpy grouping + scipy/statsmodels per test (median of {anchor_repeats}) ...")
    anchor = median_time(lambda: anchor_from_rows(*data), anchor_repeats)
    results = ours_from_rows(*data)
    ours_p = results.p_value.ravel()
    anchor_p = np.asarray(anchor_from_rows(*data))
    # Where both run the same test: rows enough on both sides, and no 2x2 table small enough
    # for abvoc's Fisher's exact test (few rows per group: a small --rows).
    both = np.isfinite(anchor_p) & (np.asarray(results.note).ravel() != SMALL_SAMPLE_NOTE)
    agree = np.allclose(ours_p[both], anchor_p[both], rtol=1e-6, atol=1e-12)
    say(
        f"abvoc: np.bincount aggregation + full results + records: {ours:8.3f} s  (target < 1 s; "
        f"aggregation alone {key_only:.3f} s)"
    )
    say(f"anchor: numpy grouping + scipy/statsmodels per test (frequentist only): {anchor:8.3f} s")
    say(f"ratio anchor / abvoc: {anchor / ours:.1f}x; p-values agree with the anchor: {agree}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=positive_int, default=10_000_000)
    parser.add_argument("--repeats", type=positive_int, default=15,
                        help="timed runs for the fast path")
    parser.add_argument("--skip-raw", action="store_true", help="skip the raw-rows benchmark")
    args = parser.parse_args(argv)
    bench_aggregates(args.repeats)
    if not args.skip_raw:
        bench_raw(args.rows, max(1, min(args.repeats, 3)))


if __name__ == "__main__":
    main()
