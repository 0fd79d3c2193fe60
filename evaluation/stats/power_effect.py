"""Power at a given effect and sample size, for proportions and means, one- or two-sided.

The counterpart of :mod:`~evaluation.stats.power`'s MDE and sample size: given the arms one has
(or plans), how likely is a significant result if the true effect is this large? Proportions use
Cohen's arcsine effect size and the normal test, as the results' z-test does; means use the
noncentral t, exact for normal data, so small samples are not promised more than the t-test gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import special

from evaluation.stats.frequentist import check_alpha
from evaluation.stats.power import size_reason


@dataclass(frozen=True)
class Power:
    """Chance of a significant result at a true effect and sample size."""

    power: float
    effect: float
    standardized: float
    n_control: float
    n_treatment: float
    alpha: float
    alternative: str
    method: str
    error: str | None = None


def _check_alternative(alternative: str) -> None:
    if alternative not in ("two-sided", "larger", "smaller"):
        raise ValueError(f"alternative must be two-sided, larger or smaller, got {alternative!r}")


def _normal_power(x: float, alpha: float, alternative: str) -> float:
    """Power of a z-test whose statistic is ``N(x, 1)`` under the alternative."""
    if alternative == "two-sided":
        z = -float(special.ndtri(alpha / 2))
        return float(special.ndtr(x - z) + special.ndtr(-x - z))
    z = -float(special.ndtri(alpha))
    return float(special.ndtr(x - z) if alternative == "larger" else special.ndtr(-x - z))


def power_proportion(
    baseline_rate: float,
    target_rate: float,
    n_control: float,
    n_treatment: float,
    alpha: float = 0.05,
    alternative: str = "two-sided",
) -> Power:
    """Power to detect ``baseline_rate -> target_rate`` with the given arms (Cohen's h).

    ``x = h sqrt(n_c n_t / (n_c + n_t))`` and the normal power above: statsmodels'
    ``NormalIndPower().power(h, nobs1=n_t, ratio=n_c / n_t, alpha, alternative)``.
    ``larger`` asks for a significant increase, ``smaller`` for a decrease.
    """
    alpha = check_alpha(alpha)
    _check_alternative(alternative)
    for value in (baseline_rate, target_rate):
        if not 0 <= value <= 1:
            raise ValueError("rates must be in [0, 1]")
    h = 2 * math.asin(math.sqrt(target_rate)) - 2 * math.asin(math.sqrt(baseline_rate))
    error = size_reason(n_control, n_treatment)
    if error is not None:
        return Power(math.nan, target_rate - baseline_rate, h, n_control, n_treatment, alpha,
                     alternative, "normal (arcsine)", error)
    x = h * math.sqrt(n_control * n_treatment / (n_control + n_treatment))
    return Power(_normal_power(x, alpha, alternative), target_rate - baseline_rate, h,
                 n_control, n_treatment, alpha, alternative, "normal (arcsine)")


def power_mean(
    difference: float,
    std: float,
    n_control: float,
    n_treatment: float,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    treatment_std: float | None = None,
) -> Power:
    """Power of the two-sample t-test to detect a difference of means of ``difference``.

    The exact power under normal data: the statistic follows a noncentral t with noncentrality
    ``delta / sqrt(s_c^2/n_c + s_t^2/n_t)``. With one common ``std`` the degrees of freedom are
    ``n_c + n_t - 2`` (statsmodels ``TTestIndPower``); with two standard deviations they are
    Welch-Satterthwaite's, as in the test the results run. At large n this is the normal power.
    """
    alpha = check_alpha(alpha)
    _check_alternative(alternative)
    t_std = std if treatment_std is None else treatment_std
    if not (std > 0 and t_std > 0):
        raise ValueError("standard deviations must be positive")
    error = size_reason(n_control, n_treatment)
    if error is None and n_control + n_treatment < 3:
        error = "a t-test needs at least three observations in all"
    pooled = math.sqrt((std**2 + t_std**2) / 2)
    if error is not None:
        return Power(math.nan, difference, difference / pooled, n_control, n_treatment, alpha,
                     alternative, "noncentral t", error)
    vc, vt = std**2 / n_control, t_std**2 / n_treatment
    if treatment_std is None:
        df = n_control + n_treatment - 2.0
    else:
        df = (vc + vt) ** 2 / (vc**2 / max(n_control - 1, 1) + vt**2 / max(n_treatment - 1, 1))
    nc = difference / math.sqrt(vc + vt)
    if alternative == "two-sided":
        crit = float(special.stdtrit(df, 1 - alpha / 2))
        value = float(special.nctdtr(df, -nc, -crit) + special.nctdtr(df, nc, -crit))
    elif alternative == "larger":
        value = float(special.nctdtr(df, -nc, -float(special.stdtrit(df, 1 - alpha))))
    else:
        value = float(special.nctdtr(df, nc, -float(special.stdtrit(df, 1 - alpha))))
    return Power(value, difference, difference / pooled, n_control, n_treatment, alpha,
                 alternative, "noncentral t")
