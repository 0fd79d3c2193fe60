"""The per-observation variances the always-valid test takes for two proportions.

A proportion's variance is a function of its rate, so it is known once the rate is; but the
rate is estimated, and at 0 % or 100 %, or in a small arm, the estimate's ``p(1 - p)`` misleads
the mSPRT (:mod:`~evaluation.stats.sequential`): these keep it on the safe side.
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
