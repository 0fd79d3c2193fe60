"""Always-valid checks of one arm's mean against a limit (guardrails), safe under peeking.

A fixed 95 % interval re-checked every hour declares a breach far more often than 2.5 % when the
true rate sits exactly at the limit (19 % over 100 hourly looks in the tester's simulation). The
two-sided normal-mixture confidence sequence of Robbins (1970), in the form of Howard, Ramdas,
McAuliffe and Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences", Annals
of Statistics 49(2), 2021, eq. (14), holds at every look at once: with ``S_t`` the sum of
``X_i - mu`` over ``t`` observations of variance ``sigma2`` and ``V_t = t sigma2``,

    P(exists t: |S_t| >= sqrt((V_t + rho) log((V_t + rho) / (rho alpha^2)))) <= alpha

(Ville's inequality on the mixture martingale ``int exp(l S_t - l^2 V_t / 2) dN(0, 1/rho)(l)``,
exact for Gaussian data and asymptotic otherwise, as the mSPRT of
:mod:`~evaluation.stats.sequential` is: it is the same mixture on one sample). ``rho`` makes it
tightest at ``tuning_n`` observations: ``rho = tuning_n sigma2 / r`` with ``r`` of
:func:`~evaluation.stats.sequential.optimal_mixture_ratio`.

A guardrail breach is then declared only when the limit lies outside the sequence. For a rate
the variance is the one at the limit, ``limit (1 - limit)``: the variance under the hypothesis
being rejected, as the score test (and Wilson's interval) use; for a mean, likewise the
per-unit mean square about the limit, ``s^2 (n - 1) / n + (mean - limit)^2``: the sample variance
alone is 0 while the first units of a rare-event metric (revenue) all read 0, which declared a
breach at two units in 90 % of the runs whose true mean sat at the limit; about the limit a
breach needs at least 65 units (all at 0 against a limit of 1), and those runs breach in about 5 %.
"""

from __future__ import annotations

import math

from evaluation.stats.frequentist import check_alpha
from evaluation.stats.sequential import optimal_mixture_ratio

GUARDRAIL_TUNING_N = 5000.0


def normal_mixture_radius(n: float, variance: float, alpha: float = 0.05,
                          tuning_n: float = GUARDRAIL_TUNING_N) -> float:
    """Half-width, on the mean's scale, of the (1 - alpha) confidence sequence after ``n``
    observations of variance ``variance`` (Howard et al. 2021, eq. (14)); NaN when ``n < 1``."""
    check_alpha(alpha)
    if not n >= 1 or not variance >= 0 or not tuning_n > 0:
        return math.nan
    # V_t + rho and rho in units of sigma2, so a zero variance gives a zero radius.
    rho = tuning_n / optimal_mixture_ratio(alpha)
    total = n + rho
    return math.sqrt(variance * total * math.log(total / (rho * alpha * alpha))) / n


def beyond_limit(mean: float, n: float, variance: float, limit: float, side: str,
                 alpha: float = 0.05, tuning_n: float = GUARDRAIL_TUNING_N) -> bool:
    """Whether the always-valid sequence lies wholly ``side`` ("above" or "below") the limit."""
    radius = normal_mixture_radius(n, variance, alpha, tuning_n)
    if math.isnan(radius) or math.isnan(mean):
        return False
    if side == "above":
        return mean - radius > limit
    if side == "below":
        return mean + radius < limit
    raise ValueError("side must be 'above' or 'below'")


def rate_beyond_limit(rate: float, n: float, limit: float, side: str = "above",
                      alpha: float = 0.05, tuning_n: float = GUARDRAIL_TUNING_N) -> bool:
    """:func:`beyond_limit` for a rate, with the variance at the limit (see the module)."""
    variance = min(max(limit, 0.0), 1.0) * (1.0 - min(max(limit, 0.0), 1.0))
    return beyond_limit(rate, n, variance, limit, side, alpha, tuning_n)


def mean_beyond_limit(mean: float, n: float, variance: float, limit: float, side: str,
                      alpha: float = 0.05, tuning_n: float = GUARDRAIL_TUNING_N) -> bool:
    """:func:`beyond_limit` for a mean of ``n`` units whose sample variance is ``variance``,
    with their mean square about the limit (see the module): the spread the data show under the
    hypothesis being rejected, never 0 where the mean is off the limit."""
    if not n >= 2 or math.isnan(variance) or math.isnan(mean):
        return False
    about_limit = variance * (n - 1) / n + (mean - limit) ** 2
    return beyond_limit(mean, n, about_limit, limit, side, alpha, tuning_n)
