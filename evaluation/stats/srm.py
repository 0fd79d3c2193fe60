"""Sample ratio mismatch: do the arms hold the share of units their weights promise?

A split that does not deliver its configured weights means the assignment or the logging is
broken, and every comparison downstream is suspect; so this is checked before results are shown.
The test is Pearson's chi-square goodness of fit of the observed counts against
``total * weight`` (scipy's ``chisquare``), with ``k - 1`` degrees of freedom. The conventional
alarm threshold is p < 0.001 (Fabijan et al., "Diagnosing Sample Ratio Mismatch in Online
Controlled Experiments", KDD 2019), strict because the check runs on every experiment and look.
The chi-square approximation needs enough units: the usual rule (Cochran 1954) is an expected
count of at least 5 in every cell, so a slice is tested only when each arm with a non-zero weight
expects :data:`MIN_EXPECTED` units or more (:func:`srm_testable`). The overall check has to say
something from the first units on (a 1 % canary step expects fewer than 5 for its first 500), so
below that count it is exact instead (:func:`exact_p_value`): with chi-square, 4 control units and
1 canary unit at 99/1 read p = 2e-5, a mismatch, though 1 in 5 happens 4.9 % of the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from evaluation.stats import checks

DEFAULT_SRM_THRESHOLD = 0.001
MIN_EXPECTED = 5.0


CHI_SQUARE = "chi-square"


@dataclass(frozen=True)
class SampleRatioResult:
    """Chi-square goodness of fit of arm counts to configured weights."""

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    statistic: float
    p_value: float
    df: int
    threshold: float
    mismatch: bool
    error: str | None = None
    method: str = CHI_SQUARE


EXACT = "exact binomial"
EXACT_PER_ARM = "exact binomial per arm, Bonferroni"


def exact_p_value(observed: np.ndarray, share: np.ndarray) -> tuple[float, str]:
    """An exact p-value of counts against shares, and its method's name: with two live arms
    the binomial test's (two-sided, scipy's); with more, each arm's binomial test against the
    rest, the smallest p times the number of arms (Bonferroni: never below the exact
    multinomial test's level, at a cost in power only where units are few anyway)."""
    from scipy import stats

    live = np.flatnonzero(share > 0)
    n = int(observed[live].sum())
    p = [stats.binomtest(int(observed[i]), n, float(share[i] / share[live].sum())).pvalue
         for i in live]
    if live.size == 2:
        return float(p[0]), EXACT
    return min(1.0, live.size * min(p)), EXACT_PER_ARM


def normalise_weights(weights: ArrayLike) -> np.ndarray:
    """Weights as shares summing to one; invalid weights are configuration bugs, so they raise."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size < 2:
        raise ValueError("need a weight for each of at least two arms")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    return w / w.sum()


def srm_arrays(counts: ArrayLike, weights: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Statistic and p-value for many count vectors at once (arms on the last axis).

    An arm with weight zero is left out while it is empty; if it has units, the split is
    certainly broken and the result is ``(inf, 0)``. Rows with no units give NaN (nothing to
    check yet); NaN or negative counts raise, so a broken count never reads as "no mismatch".
    """
    share = normalise_weights(weights)
    observed = np.asarray(counts, dtype=np.float64)
    checks.counts("unit counts", observed)
    if observed.shape[-1] != share.size:
        raise ValueError(f"counts have {observed.shape[-1]} arms, weights {share.size}")
    total = observed.sum(axis=-1, keepdims=True)
    expected = total * share
    live = share > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(live, (observed - expected) ** 2 / expected, 0.0)
    statistic = terms.sum(axis=-1)
    df = int(live.sum()) - 1
    p_value = special.chdtrc(df, statistic) if df >= 1 else np.ones_like(statistic)
    stray = (observed[..., ~live] > 0).any(axis=-1)
    statistic = np.where(stray, np.inf, statistic)
    p_value = np.where(stray, 0.0, p_value)
    empty = total[..., 0] == 0
    statistic = np.where(empty, np.nan, statistic)
    p_value = np.where(empty, np.nan, p_value)
    return statistic, p_value


def srm_testable(counts: ArrayLike, weights: ArrayLike,
                 min_expected: float = MIN_EXPECTED) -> np.ndarray:
    """Which count vectors (arms on the last axis) expect at least ``min_expected`` units in
    every arm with a non-zero weight: below that the chi-square p-value is too rough to act on
    (7 units in one of three arms reads p = 0.0009)."""
    share = normalise_weights(weights)
    observed = np.asarray(counts, dtype=np.float64)
    checks.counts("unit counts", observed)
    if observed.shape[-1] != share.size:
        raise ValueError(f"counts have {observed.shape[-1]} arms, weights {share.size}")
    expected = observed.sum(axis=-1, keepdims=True) * share
    return np.where(share > 0, expected >= min_expected, True).all(axis=-1)


def sample_ratio_mismatch(
    counts: Sequence[int] | ArrayLike,
    weights: Sequence[float] | ArrayLike,
    threshold: float = DEFAULT_SRM_THRESHOLD,
) -> SampleRatioResult:
    """Check one experiment (or one slice): counts of units per arm against the weights, by
    chi-square, or exactly where a live arm expects fewer than :data:`MIN_EXPECTED` units."""
    if not 0 < threshold < 1:
        raise ValueError("threshold must be in (0, 1)")
    observed = np.asarray(counts, dtype=np.float64)
    share = normalise_weights(weights)
    if observed.shape != share.shape:
        raise ValueError("need one count per weight")
    checks.counts("unit counts", observed)
    statistic, p_value = srm_arrays(observed, share)
    total = float(observed.sum())
    live = int((share > 0).sum())
    error = None
    if total == 0:
        error = "no units have been assigned yet"
    elif live < 2 and np.isfinite(statistic):
        error = "only one arm has a non-zero weight, so there is no ratio to check"
    p, method = float(p_value), CHI_SQUARE
    if error is None and np.isfinite(statistic) and not srm_testable(observed, share):
        p, method = exact_p_value(observed, share)
    return SampleRatioResult(
        observed=tuple(int(x) for x in observed),
        expected=tuple(float(x) for x in total * share),
        statistic=float(statistic),
        p_value=p if error is None else float("nan"),
        df=max(live - 1, 0),
        threshold=threshold,
        mismatch=error is None and p < threshold,
        error=error,
        method=method,
    )
