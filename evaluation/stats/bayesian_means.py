"""Bayesian comparison of means, and the relative lift of any metric.

With a flat prior and normal data of unknown variance, an arm's mean has the posterior
``m + sqrt(v / n) t_{n-1}`` (``v`` the sample variance; Gelman et al., *Bayesian Data
Analysis*, 3rd ed., 2013, sec. 3.2), and the difference ``D = T - C`` is the difference of two
such (Behrens-Fisher). With ``mu = m_t - m_c`` and ``s^2 = v_t/n_t + v_c/n_c``:

* chance to beat control ``P(D > 0)``: where an arm has fewer than :data:`EXACT_BELOW`
  observations, integrated exactly (Gauss-Legendre over the control's posterior quantiles);
  from there on ``Phi(mu / s)``, the large-sample normal posterior (the model of GrowthBook's
  Gaussian engine), which the t posteriors approach. Plugging the variance in at every n said
  99.8 % for two observations a side where the posterior gives 85 %;
* expected loss of shipping ``E[max(-D, 0)]`` and of keeping the control ``E[max(D, 0)]``, and
  the equal-tailed credible interval, on Welch's approximation of ``D`` as ``mu + s t_df``
  (Welch-Satterthwaite ``df``; the Student partial expectations, NaN where ``df <= 1``, where the
  losses are unbounded); at large n these are the normal ones.

The relative lift ``(T - C) / |C|`` gets the normal treatment with the delta-method variance,
which also serves proportions (their Beta posteriors are close to normal once an arm has a few
dozen observations). "Beat" means a larger value; for a lower-is-better metric read
``1 - chance``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats

from evaluation.stats import checks
from evaluation.stats.frequentist import ZERO_CONTROL_NOTE, normal_critical, welch_df
from evaluation.stats.reasons import Reason, first_reason, message
from evaluation.stats.sufficient import MeanStats

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


@dataclass(frozen=True, eq=False)
class GaussianArrays:
    """Kernel output, one element per comparison."""

    chance_to_win: np.ndarray
    expected_loss: np.ndarray
    expected_loss_control: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    relative_ci_low: np.ndarray
    relative_ci_high: np.ndarray
    reason: np.ndarray


@dataclass(frozen=True)
class GaussianResult:
    """Posterior comparison of two means."""

    chance_to_win: float
    expected_loss: float
    expected_loss_control: float
    ci_low: float
    ci_high: float
    relative_ci_low: float
    relative_ci_high: float
    alpha: float
    error: str | None = None
    note: str | None = None


EXACT_BELOW = 100
"""Arms smaller than this get the exact chance to win from their t posteriors."""
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(96)
_U, _W = (_NODES + 1.0) / 2.0, _WEIGHTS / 2.0  # on (0, 1)


def _partial(mu: np.ndarray, s: np.ndarray, df: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``P(D > 0)``, ``E[max(-D, 0)]`` and ``E[max(D, 0)]`` for ``D = mu + s T``: ``T`` normal,
    or Student's t on ``df`` degrees of freedom where ``df`` is finite (losses NaN where
    ``df <= 1``: unbounded)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z = mu / s
        density = _INV_SQRT_2PI * np.exp(-0.5 * z * z)
        chance, below = special.ndtr(z), special.ndtr(-z)
        spread = np.ones_like(z)  # E[max(-T - z, 0)] = spread * f(z) - z F(-z)
        t = np.isfinite(df)
        if t.any():
            nu = df[t]
            density[t], chance[t], below[t] = (stats.t.pdf(z[t], nu), stats.t.cdf(z[t], nu),
                                              stats.t.cdf(-z[t], nu))
            spread[t] = np.where(nu > 1, (nu + z[t] * z[t]) / (nu - 1.0), np.nan)
        loss_ship = s * spread * density - mu * below
        loss_keep = s * spread * density + mu * chance
    return chance, np.maximum(loss_ship, 0.0), np.maximum(loss_keep, 0.0)


def exact_chance(m_c: np.ndarray, sd_c: np.ndarray, n_c: np.ndarray, m_t: np.ndarray,
                 sd_t: np.ndarray, n_t: np.ndarray) -> np.ndarray:
    """``P(T > C)`` for ``C = m_c + sd_c t_{n_c - 1}`` and ``T`` alike: the treatment's CDF
    averaged over the control's posterior quantiles (Gauss-Legendre in probability, where the
    integrand is smooth and bounded however heavy the tails)."""
    c = m_c[:, None] + sd_c[:, None] * stats.t.ppf(_U[None, :], (n_c - 1.0)[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        beaten = stats.t.sf((c - m_t[:, None]) / sd_t[:, None], (n_t - 1.0)[:, None])
    return beaten @ _W


def gaussian_arrays(
    mean_control: ArrayLike,
    variance_control: ArrayLike,
    n_control: ArrayLike,
    mean_treatment: ArrayLike,
    variance_treatment: ArrayLike,
    n_treatment: ArrayLike,
    alpha: float = 0.05,
) -> GaussianArrays:
    """Chance to win, expected losses and credible intervals for many comparisons at once.

    ``variance_*`` are per-observation variances. Where the control mean is zero the relative
    interval alone is NaN: there is no relative lift (the frequentist ``note`` says so).
    """
    z = normal_critical(alpha)
    m_c, v_c, n_c, m_t, v_t, n_t = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64)
          for a in (mean_control, variance_control, n_control, mean_treatment,
                    variance_treatment, n_treatment))
    )
    checks.counts("n_control", n_c)
    checks.counts("n_treatment", n_t)
    if (np.isnan(m_c) & (n_c > 0)).any() or (np.isnan(m_t) & (n_t > 0)).any():
        raise ValueError("a mean is NaN although its arm has observations")
    if (np.isnan(v_c) & (n_c >= 2)).any() or (np.isnan(v_t) & (n_t >= 2)).any():
        raise ValueError("a variance is NaN although its arm has at least two observations")
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = m_t - m_c
        s = np.sqrt(v_t / n_t + v_c / n_c)
        c2 = m_c * m_c
        lift = mu / np.abs(m_c)
        s_rel = np.sqrt(v_t / (n_t * c2) + m_t * m_t * v_c / (n_c * c2 * c2))
    small = (np.minimum(n_c, n_t) < EXACT_BELOW) & (n_c >= 2) & (n_t >= 2)
    df = np.where(small, welch_df(v_c, n_c, v_t, n_t), np.inf)
    chance, loss_ship, loss_keep = _partial(mu, s, df)
    exact = small & (v_c > 0) & (v_t > 0)
    if exact.any():
        chance[exact] = exact_chance(m_c[exact], np.sqrt(v_c[exact] / n_c[exact]), n_c[exact],
                                     m_t[exact], np.sqrt(v_t[exact] / n_t[exact]), n_t[exact])
    reason = first_reason(
        [
            (n_c == 0, Reason.CONTROL_EMPTY),
            (n_t == 0, Reason.TREATMENT_EMPTY),
            (n_c < 2, Reason.CONTROL_TOO_FEW),
            (n_t < 2, Reason.TREATMENT_TOO_FEW),
            (~(s > 0), Reason.NO_VARIANCE),
        ]
    )
    with np.errstate(invalid="ignore"):
        half = np.where(small, stats.t.isf(alpha / 2, np.where(small, df, 1.0)), z) * s
    ci_low, ci_high = mu - half, mu + half
    rel_low, rel_high = lift - z * s_rel, lift + z * s_rel
    bad = reason != Reason.OK
    for array in (chance, loss_ship, loss_keep, ci_low, ci_high, rel_low, rel_high):
        array[bad] = np.nan
    return GaussianArrays(chance, loss_ship, loss_keep, ci_low, ci_high, rel_low, rel_high,
                          reason)


def gaussian_test(control: MeanStats, treatment: MeanStats, alpha: float = 0.05) -> GaussianResult:
    """Chance that the treatment's mean beats the control's, expected losses and intervals."""
    arrays = gaussian_arrays([control.mean if control.n else 0.0], [control.variance],
                             [control.n], [treatment.mean if treatment.n else 0.0],
                             [treatment.variance], [treatment.n], alpha)
    values = [float(getattr(arrays, name)[0]) for name in (
        "chance_to_win", "expected_loss", "expected_loss_control", "ci_low", "ci_high",
        "relative_ci_low", "relative_ci_high")]
    error = message(int(arrays.reason[0]))
    note = ZERO_CONTROL_NOTE if error is None and control.mean == 0 else None
    return GaussianResult(*values, alpha=alpha, error=error, note=note)
