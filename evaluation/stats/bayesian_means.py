"""Bayesian comparison on a Gaussian posterior: mean metrics, and the relative lift of any metric.

With a flat prior and the large-sample normal likelihood, an arm's mean has the posterior
``N(m, v / n)`` (``v`` the sample variance), so the difference ``D = T - C`` is
``N(mu, s^2)`` with ``mu = m_t - m_c`` and ``s^2 = v_t/n_t + v_c/n_c`` (Gelman et al., *Bayesian
Data Analysis*, 3rd ed., 2013, sec. 3.2 with the variance plugged in; the model of GrowthBook's
Gaussian engine). Then, with ``phi`` and ``Phi`` the standard normal density and CDF:

* chance to beat control ``P(D > 0) = Phi(mu / s)``;
* expected loss of shipping ``E[max(-D, 0)] = s phi(mu/s) - mu Phi(-mu/s)``, of keeping the
  control ``E[max(D, 0)] = s phi(mu/s) + mu Phi(mu/s)`` (the normal partial expectations);
* the equal-tailed credible interval ``mu +- z_{1-alpha/2} s``.

The relative lift ``(T - C) / |C|`` gets the same treatment with the delta-method variance, which
also serves proportions (their Beta posteriors are close to normal once an arm has a few dozen
observations). "Beat" means a larger value; for a lower-is-better metric read ``1 - chance``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from evaluation.stats import checks
from evaluation.stats.frequentist import ZERO_CONTROL_NOTE, normal_critical
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


def _partial(mu: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``P(D > 0)``, ``E[max(-D, 0)]`` and ``E[max(D, 0)]`` for ``D ~ N(mu, s^2)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = mu / s
        density = _INV_SQRT_2PI * np.exp(-0.5 * z * z)
        chance = special.ndtr(z)
        loss_ship = s * density - mu * special.ndtr(-z)
        loss_keep = s * density + mu * chance
    return chance, np.maximum(loss_ship, 0.0), np.maximum(loss_keep, 0.0)


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
    chance, loss_ship, loss_keep = _partial(mu, s)
    reason = first_reason(
        [
            (n_c == 0, Reason.CONTROL_EMPTY),
            (n_t == 0, Reason.TREATMENT_EMPTY),
            (n_c < 2, Reason.CONTROL_TOO_FEW),
            (n_t < 2, Reason.TREATMENT_TOO_FEW),
            (~(s > 0), Reason.NO_VARIANCE),
        ]
    )
    ci_low, ci_high = mu - z * s, mu + z * s
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
