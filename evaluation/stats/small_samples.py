"""Intervals that stay honest on small 2x2 tables, where the Wald interval collapses.

With 0/1 against 1/1 the Wald interval of the difference has zero width, because each arm's
estimated variance ``p(1 - p)`` is zero. Score intervals invert the test instead of plugging in
the estimate, so they keep their width; the fixed-horizon tests use them (with Fisher's exact
p-value) where the normal approximation does not hold.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

MIN_EXPECTED = 5.0
SMALL_SAMPLE_NOTE = (
    f"fewer than {MIN_EXPECTED:g} expected successes or failures in an arm: the normal "
    "approximation does not hold, so the p-value is Fisher's exact test, the interval Newcombe's "
    "score interval, and no relative interval is given"
)
EXTREME_RATE_NOTE = (
    "an arm's rate is 0 % or 100 %, where the Wald interval has no width: the interval is "
    "Newcombe's score interval instead"
)



def wilson_arrays(
    successes: np.ndarray, n: np.ndarray, z: float
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a rate, element-wise (Wilson, JASA 1927)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = successes / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / denom
        half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    return centre - half, centre + half


def wilson_interval(successes: float, n: float, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of one rate (statsmodels ``proportion_confint(method="wilson")``),
    within [0, 1]: with no successes its lower end is exactly 0 (the formula's rounding leaves
    ~1e-17, an interval that would exclude its own estimate), with all successes its upper end
    is 1."""
    if n <= 0:
        return math.nan, math.nan
    low, high = wilson_arrays(np.float64(successes), np.float64(n),
                              float(stats.norm.isf(alpha / 2)))
    return (0.0 if successes <= 0 else max(float(low), 0.0),
            1.0 if successes >= n else min(float(high), 1.0))


def newcombe_interval(
    s_c: np.ndarray, n_c: np.ndarray, s_t: np.ndarray, n_t: np.ndarray, z: float
) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's hybrid score interval of ``p_t - p_c`` (Newcombe, Stat. Med. 1998, method 10;
    statsmodels ``confint_proportions_2indep(method="newcomb")``), never of zero width."""
    lo_t, hi_t = wilson_arrays(s_t, n_t, z)
    lo_c, hi_c = wilson_arrays(s_c, n_c, z)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_t, p_c = s_t / n_t, s_c / n_c
        diff = p_t - p_c
        low = diff - np.sqrt((p_t - lo_t) ** 2 + (hi_c - p_c) ** 2)
        high = diff + np.sqrt((hi_t - p_t) ** 2 + (p_c - lo_c) ** 2)
    return np.maximum(low, -1.0), np.minimum(high, 1.0)  # rounding leaves -1 - 2e-16


def score_fallbacks(
    s_c: np.ndarray, n_c: np.ndarray, s_t: np.ndarray, n_t: np.ndarray, z: float,
    ok: np.ndarray, ci_low: np.ndarray, ci_high: np.ndarray, p_value: np.ndarray,
    relative: tuple[np.ndarray, np.ndarray, np.ndarray], note: np.ndarray,
) -> None:
    """In place, where the z-test's Wald figures fail: Fisher's p and Newcombe's interval on
    small tables; Newcombe's interval where an arm sits at 0 % or 100 % (its Wald variance is 0,
    so 100 % vs 0 % would give the point [-1, -1]). The relative figures go where they collapse.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (s_c + s_t) / (n_c + n_t)
        expected = np.minimum(n_c, n_t) * np.minimum(pooled, 1.0 - pooled)
        flat_c, flat_t = (s_c == 0) | (s_c == n_c), (s_t == 0) | (s_t == n_t)
    small = ok & (expected < MIN_EXPECTED)
    extreme = ok & ~small & (flat_c | flat_t)
    for rows in (small, extreme):
        if rows.any():
            ci_low[rows], ci_high[rows] = newcombe_interval(
                s_c[rows], n_c[rows], s_t[rows], n_t[rows], z)
    if small.any():
        p_value[small] = [
            stats.fisher_exact([[a, n1 - a], [b, n2 - b]]).pvalue
            for a, n1, b, n2 in zip(s_t[small], n_t[small], s_c[small], n_c[small], strict=True)
        ]
        note[small] = SMALL_SAMPLE_NOTE
    for array in relative:
        array[small | (extreme & flat_c & flat_t)] = np.nan
    note[extreme & (note == None)] = EXTREME_RATE_NOTE  # noqa: E711
