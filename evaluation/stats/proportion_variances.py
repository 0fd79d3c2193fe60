"""The per-observation variances the always-valid test takes for two proportions or means.

A proportion's variance is a function of its rate, so it is known once the rate is; but the
rate is estimated, and at 0 % or 100 %, or in a small arm, the estimate's ``p(1 - p)`` misleads
the mSPRT (:mod:`~evaluation.stats.sequential`): these keep it on the safe side. A small arm's
sample variance misleads it the same way (:func:`null_floor`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def adjusted_proportion_variance(successes: ArrayLike, n: ArrayLike) -> np.ndarray:
    """Per-observation variance ``p~(1 - p~)`` at the Agresti-Caffo rate ``(s + 1) / (n + 2)``.

    The plain ``p(1 - p)`` is 0 for an arm at 0 % or 100 %, which would leave the mSPRT with no
    variance at all (a 100 % vs 0 % split never rejected). Adding one success and one failure
    (Agresti and Caffo, The American Statistician 54, 2000) keeps it positive and, being a little
    never smaller than ``p(1 - p)`` (``p~`` lies between ``p`` and 1/2), errs on the safe side.
    """
    s, m = np.broadcast_arrays(np.asarray(successes, dtype=np.float64),
                               np.asarray(n, dtype=np.float64))
    rate = (s + 1.0) / (m + 2.0)
    return np.where(m > 0, rate * (1.0 - rate), np.nan)


def proportion_variances(s_c: ArrayLike, n_c: ArrayLike, s_t: ArrayLike, n_t: ArrayLike
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Per-observation variances of two proportions for the mSPRT: the arms' Agresti-Caffo
    variances, both scaled up where needed so that the difference's variance is never below
    the pooled one's (the variance it has under no difference).

    A small arm's own rate is a poor guide to its variance: a canary arm at 0/54 beside a
    control at 115/1953 has an Agresti-Caffo variance 2.6 times below what 5.9 % gives, and its
    always-valid p (0.047) fell below the exact single-look Fisher p (0.071); an A/A test with a
    2 % arm rejected 6.4 % of the time. The floor is the null's variance, as in the classic
    two-proportion z-test; with arms of like sizes it is about the arms' own."""
    s_c, n_c, s_t, n_t = (np.asarray(a, dtype=np.float64) for a in (s_c, n_c, s_t, n_t))
    var_c = adjusted_proportion_variance(s_c, n_c)
    var_t = adjusted_proportion_variance(s_t, n_t)
    pooled = adjusted_proportion_variance(s_c + s_t, n_c + n_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.fmax(1.0, pooled * (1.0 / n_c + 1.0 / n_t) / (var_c / n_c + var_t / n_t))
    return var_c * scale, var_t * scale


def null_floor(n_c: np.ndarray, var_c: np.ndarray, n_t: np.ndarray, var_t: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Two means' sample variances, both scaled up where needed so that the difference's
    variance is never below the pooled (equal-variance) two-sample t-test's,
    ``s_p^2 (1/n_c + 1/n_t)``: what it is under no difference when the arms share a spread.

    A small arm's sample variance is a poor guide to its spread: a canary arm of 6 users with no
    correction (variance 0) beside a control at 4.7 % shipped at always-valid p = 0.005, and in
    A/A simulations at a 99:1 split skewed metrics (lognormal, Pareto, rare events as a mean)
    crossed the boundary in 37-87 % of runs. With arms of equal sizes the floor is the arms' own
    variance, so nothing changes; scaling both keeps their ratio, so Welch's degrees of freedom
    are unchanged. An arm with fewer than two observations keeps its NaN (too few to test)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        within = np.where(n_c > 1, (n_c - 1.0) * var_c, 0.0) + \
            np.where(n_t > 1, (n_t - 1.0) * var_t, 0.0)
        pooled = within / (n_c + n_t - 2.0)
        scale = np.fmax(1.0, pooled * (1.0 / n_c + 1.0 / n_t) / (var_c / n_c + var_t / n_t))
    scale = np.where(np.isfinite(scale), scale, 1.0)
    return var_c * scale, var_t * scale
