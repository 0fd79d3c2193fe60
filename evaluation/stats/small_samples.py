"""Intervals that stay honest on small 2x2 tables, where the Wald interval collapses.

With 0/1 against 1/1 the Wald interval of the difference has zero width, because each arm's
estimated variance ``p(1 - p)`` is zero. Score intervals invert the test instead of plugging in
the estimate, so they keep their width; the fixed-horizon tests use them (with Fisher's exact
p-value) where the normal approximation does not hold.
"""

from __future__ import annotations

import numpy as np


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
    return low, high
