"""Mann–Whitney U for latency and ordinal metrics, on raw samples or on two histograms.

Latency is skewed and heavy-tailed, so a difference of means says little; the rank test asks
whether a treatment's latencies tend to be larger. ``U`` here counts, over all (treatment,
control) pairs, the pairs where the treatment value is larger, ties counting one half; so
``U / (n_t n_c)`` estimates ``P(T > C) + P(T = C) / 2`` (the probability of superiority).

**Histogram approximation.** From two histograms on one layout, values inside one bucket are
treated as tied. Pairs in different buckets are ordered exactly (buckets are ordered), so the
approximate U differs from the raw one by at most ``0.5 * sum_k t_k c_k`` (half the number of
pairs sharing a bucket), reported as ``max_statistic_error``. The p-value is the normal
approximation with the tie-corrected variance of the bucket ties, i.e. exactly scipy's
asymptotic ``mannwhitneyu`` on the data rounded to the bucket representatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats

from evaluation.stats.histogram import LatencyHistogram
from evaluation.stats.reasons import Reason, message

Alternative = Literal["two-sided", "greater", "less"]


@dataclass(frozen=True)
class RankTestResult:
    """Mann–Whitney U of treatment against control."""

    statistic: float
    p_value: float
    probability_of_superiority: float
    n_control: int
    n_treatment: int
    alternative: str
    max_statistic_error: float = 0.0
    error: str | None = None


def _degenerate(
    n_c: int, n_t: int, alternative: str, reason: Reason, max_error: float = 0.0
) -> RankTestResult:
    return RankTestResult(
        statistic=np.nan,
        p_value=np.nan,
        probability_of_superiority=np.nan,
        n_control=n_c,
        n_treatment=n_t,
        alternative=alternative,
        max_statistic_error=max_error,
        error=message(reason),
    )


def _check_alternative(alternative: str) -> None:
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be two-sided, greater or less, got {alternative!r}")


def mann_whitney_u(
    control: ArrayLike,
    treatment: ArrayLike,
    alternative: Alternative = "two-sided",
    method: Literal["auto", "asymptotic", "exact"] = "auto",
) -> RankTestResult:
    """Mann–Whitney U on raw samples (scipy's ``mannwhitneyu`` with continuity correction).

    ``alternative="greater"`` asks whether treatment values tend to be larger than control's.
    """
    _check_alternative(alternative)
    c = np.asarray(control, dtype=np.float64).ravel()
    t = np.asarray(treatment, dtype=np.float64).ravel()
    for name, values in (("control", c), ("treatment", t)):
        if np.isnan(values).any():
            raise ValueError(f"{name} contains NaN, which has no rank; drop missing values first")
    if c.size == 0:
        return _degenerate(0, t.size, alternative, Reason.CONTROL_EMPTY)
    if t.size == 0:
        return _degenerate(c.size, 0, alternative, Reason.TREATMENT_EMPTY)
    if c.min() == c.max() == t.min() == t.max():
        return _degenerate(c.size, t.size, alternative, Reason.ALL_TIED)
    res = stats.mannwhitneyu(t, c, alternative=alternative, method=method)
    u = float(res.statistic)
    return RankTestResult(
        statistic=u,
        p_value=float(res.pvalue),
        probability_of_superiority=u / (c.size * t.size),
        n_control=int(c.size),
        n_treatment=int(t.size),
        alternative=alternative,
    )


def mann_whitney_histograms(
    control: LatencyHistogram,
    treatment: LatencyHistogram,
    alternative: Alternative = "two-sided",
) -> RankTestResult:
    """Approximate Mann–Whitney U from two histograms (see the module docstring).

    Normal approximation with tie correction and continuity correction (Mann and Whitney, 1947;
    the tie-corrected variance ``n_t n_c / 12 * ((N + 1) - sum(g^3 - g) / (N (N - 1)))`` over tie
    groups ``g``, here the buckets).
    """
    _check_alternative(alternative)
    if control.layout != treatment.layout:
        raise ValueError("histograms with different layouts cannot be compared")
    c = control.counts.astype(np.float64)
    t = treatment.counts.astype(np.float64)
    n_c, n_t = int(control.count), int(treatment.count)
    same_bucket_pairs = float(np.dot(t, c))
    max_error = 0.5 * same_bucket_pairs
    if n_c == 0:
        return _degenerate(0, n_t, alternative, Reason.CONTROL_EMPTY)
    if n_t == 0:
        return _degenerate(n_c, 0, alternative, Reason.TREATMENT_EMPTY)
    groups = c + t
    if np.count_nonzero(groups) == 1:
        return _degenerate(n_c, n_t, alternative, Reason.ALL_TIED, max_error)
    control_below = np.cumsum(c) - c
    u_t = float(np.dot(t, control_below + 0.5 * c))
    u_c = n_t * n_c - u_t
    total = n_c + n_t
    tie_term = float(np.sum(groups**3 - groups))
    sd = np.sqrt(n_t * n_c / 12.0 * ((total + 1) - tie_term / (total * (total - 1))))
    mu = n_t * n_c / 2.0
    if alternative == "two-sided":
        z = (max(u_t, u_c) - mu - 0.5) / sd
        p_value = min(1.0, 2.0 * float(special.ndtr(-z)))
    elif alternative == "greater":
        p_value = float(special.ndtr(-(u_t - mu - 0.5) / sd))
    else:
        p_value = float(special.ndtr(-(u_c - mu - 0.5) / sd))
    return RankTestResult(
        statistic=u_t,
        p_value=p_value,
        probability_of_superiority=u_t / (n_c * n_t),
        n_control=n_c,
        n_treatment=n_t,
        alternative=alternative,
        max_statistic_error=max_error,
    )
