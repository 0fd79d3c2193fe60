"""Sample size and power for the always-valid (mSPRT) test the decision uses.

The fixed-horizon sample size (``z_{1-alpha/2} + z_power``) is too small for the always-valid
test: at the n it gives for baseline 0.3046 and +10 %, the mSPRT interval excluded 0 in only
47 % of simulations. The mSPRT rejects once ``|d| / sqrt(V) >= z_b(V)`` with the boundary of
:mod:`~evaluation.stats.sequential`,

    z_b(V)^2 = (V + tau2) / tau2 * (2 log(1/alpha) + log((V + tau2) / V)),

so with ``d ~ N(delta, V)`` the chance to have rejected by the look with variance ``V`` is at
least ``Phi(|delta| / sqrt(V) - z_b(V))`` (earlier looks only add to it). The sample per arm is
the smallest ``n`` with ``|delta| / sqrt(V_n) - z_b(V_n) >= z_power``, ``V_n = (v_c + v_t) / n``,
found numerically. ``alpha`` is the level of one arm's test (already divided by the arm count).
"""

from __future__ import annotations

import math

from scipy import special

from evaluation.stats.frequentist import check_alpha

MAX_N = 1e12


def always_valid_boundary(variance: float, mixture_variance: float, alpha: float) -> float:
    """``z_b``: the |z| at which the mSPRT rejects, for an estimate of this variance."""
    vt = variance + mixture_variance
    return math.sqrt(vt / mixture_variance
                     * (2.0 * math.log(1.0 / check_alpha(alpha)) + math.log(vt / variance)))


def always_valid_power(delta: float, var_c: float, n_c: float, var_t: float, n_t: float,
                       mixture_variance: float, alpha: float) -> float:
    """Chance (lower bound) that the mSPRT has rejected by these sample sizes at ``delta``."""
    if not (n_c > 0 and n_t > 0 and mixture_variance > 0):
        return math.nan
    v = var_c / n_c + var_t / n_t
    if not v > 0:
        return math.nan
    z_b = always_valid_boundary(v, mixture_variance, alpha)
    return float(special.ndtr(abs(delta) / math.sqrt(v) - z_b))


def always_valid_sample_size(delta: float, var_c: float, var_t: float,
                             mixture_variance: float, alpha: float, power: float) -> float:
    """Per-arm n (equal arms) at which the mSPRT detects ``delta`` with ``power``; inf if none
    up to :data:`MAX_N` does (a zero effect, no mixture variance)."""
    unit = var_c + var_t
    if not (delta != 0 and unit > 0 and mixture_variance > 0 and 0 < power < 1):
        return math.inf
    z_power = float(special.ndtri(power))

    def short(n: float) -> bool:
        v = unit / n
        return abs(delta) / math.sqrt(v) - always_valid_boundary(v, mixture_variance,
                                                                 alpha) < z_power

    low, high = 1.0, 2.0
    while short(high):
        low, high = high, high * 2.0
        if high > MAX_N:
            return math.inf
    while high - low > 0.5:  # the crossing within half a unit; ceil gives the n
        mid = 0.5 * (low + high)
        low, high = (mid, high) if short(mid) else (low, mid)
    return float(math.ceil(high))
