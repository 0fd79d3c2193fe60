"""Beta-Binomial analysis of a proportion: chance to beat control and expected loss.

With a ``Beta(a0, b0)`` prior (uniform by default) the posterior of an arm with ``s`` successes in
``n`` trials is ``Beta(a0 + s, b0 + n - s)``. For control ``C`` and treatment ``T``:

* chance to win ``P(T > C) = integral f_C(x) (1 - F_T(x)) dx``;
* expected loss of shipping the treatment ``E[max(C - T, 0)]`` and of keeping the control
  ``E[max(T - C, 0)]`` (the "risk" of Stucchio, "Bayesian A/B Testing at VWO", 2015).

These are one-dimensional integrals, computed by Gauss–Legendre quadrature against the density of
the *narrower* posterior, where the other posterior's CDF is smooth on the scale of the grid. The
inner expectation has a closed form, ``E[max(x - W, 0)] = x F_W(x) - mu_W F_{W+}(x)`` with
``W+ ~ Beta(a + 1, b)``, and ``F_{W+}(x) = F_W(x) - x^a (1 - x)^b / (a B(a, b))`` (the
regularized incomplete beta recurrence, DLMF 8.17.20), so each node costs one ``betainc``. The
window spans the narrow posterior's mean plus/minus ``WINDOW_SDS`` standard deviations, widened on
the side of its skew and clipped to [0, 1]. The closed-form sum of Evan Miller ("Formulas for
Bayesian A/B Testing", 2015) for integer parameters is the reference in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from evaluation.stats import checks
from evaluation.stats.frequentist import normal_critical
from evaluation.stats.reasons import Reason, first_reason, message
from evaluation.stats.sufficient import ProportionStats

DEFAULT_NODES = 48
WINDOW_SDS = 10.0


@dataclass(frozen=True)
class BetaPrior:
    """Prior Beta(alpha, beta) on a rate; Beta(1, 1) is uniform."""

    alpha: float = 1.0
    beta: float = 1.0

    def __post_init__(self) -> None:
        if not (self.alpha > 0 and self.beta > 0):
            raise ValueError("prior parameters must be positive")


@dataclass(frozen=True)
class BayesianResult:
    """Posterior comparison of two rates."""

    chance_to_win: float
    expected_loss: float
    expected_loss_control: float
    control_posterior: tuple[float, float]
    treatment_posterior: tuple[float, float]
    error: str | None = None


@dataclass(frozen=True, eq=False)
class BayesianArrays:
    """Kernel output, one element per comparison."""

    chance_to_win: np.ndarray
    expected_loss: np.ndarray
    expected_loss_control: np.ndarray
    reason: np.ndarray


@lru_cache(maxsize=16)
def _legendre(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    points, weights = np.polynomial.legendre.leggauss(nodes)
    return points, weights


def _beta_moments(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    total = a + b
    mean = a / total
    sd = np.sqrt(a * b / (total * total * (total + 1.0)))
    skew = 2.0 * (b - a) * np.sqrt(total + 1.0) / ((total + 2.0) * np.sqrt(a * b))
    return mean, sd, skew


def beta_binomial_arrays(
    n_control: ArrayLike,
    successes_control: ArrayLike,
    n_treatment: ArrayLike,
    successes_treatment: ArrayLike,
    prior: BetaPrior | None = None,
    nodes: int = DEFAULT_NODES,
) -> BayesianArrays:
    """Chance to win and expected losses for many comparisons at once."""
    prior = prior if prior is not None else BetaPrior()
    if nodes < 8:
        raise ValueError("use at least 8 quadrature nodes")
    n_c, s_c, n_t, s_t = np.broadcast_arrays(
        *(
            np.asarray(x, dtype=np.float64)
            for x in (n_control, successes_control, n_treatment, successes_treatment)
        )
    )
    checks.proportions("n_control", n_c, "successes_control", s_c)
    checks.proportions("n_treatment", n_t, "successes_treatment", s_t)
    a_c, b_c = prior.alpha + s_c, prior.beta + n_c - s_c
    a_t, b_t = prior.alpha + s_t, prior.beta + n_t - s_t
    mu_c, sd_c, skew_c = _beta_moments(a_c, b_c)
    mu_t, sd_t, skew_t = _beta_moments(a_t, b_t)

    # Integrate against the narrower posterior N; W is the wider one.
    t_narrow = sd_t <= sd_c
    a_n, b_n = np.where(t_narrow, a_t, a_c), np.where(t_narrow, b_t, b_c)
    a_w, b_w = np.where(t_narrow, a_c, a_t), np.where(t_narrow, b_c, b_t)
    mu_n, sd_n, skew_n = (
        np.where(t_narrow, x, y) for x, y in ((mu_t, mu_c), (sd_t, sd_c), (skew_t, skew_c))
    )
    mu_w = np.where(t_narrow, mu_c, mu_t)

    lo = np.maximum(mu_n - WINDOW_SDS * sd_n * (1.0 + np.maximum(-skew_n, 0.0)), 0.0)
    hi = np.minimum(mu_n + WINDOW_SDS * sd_n * (1.0 + np.maximum(skew_n, 0.0)), 1.0)
    points, weights = _legendre(nodes)
    half = ((hi - lo) / 2.0)[..., None]
    x = (lo + hi)[..., None] / 2.0 + half * points
    w = half * weights

    # Nodes lie strictly inside (0, 1); the guard only silences overflow/underflow of
    # negligible terms at extreme counts.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        a_n_, b_n_, a_w_, b_w_ = (v[..., None] for v in (a_n, b_n, a_w, b_w))
        log_x, log_1mx = np.log(x), np.log1p(-x)
        density = np.exp((a_n_ - 1.0) * log_x + (b_n_ - 1.0) * log_1mx - special.betaln(a_n_, b_n_))
        cdf_w = special.betainc(a_w_, b_w_, x)
        cdf_w_plus = cdf_w - np.exp(
            a_w_ * log_x + b_w_ * log_1mx - np.log(a_w_) - special.betaln(a_w_, b_w_)
        )
        weighted = w * density
        # Dividing by the quadrature's own mass makes small window truncation cancel out.
        mass = weighted.sum(axis=-1)
        p_w_below_n = (weighted * cdf_w).sum(axis=-1) / mass
        loss_n_over_w = (weighted * (x * cdf_w - mu_w[..., None] * cdf_w_plus)).sum(axis=-1) / mass
    loss_n_over_w = np.maximum(loss_n_over_w, 0.0)

    gain = mu_t - mu_c
    chance = np.clip(np.where(t_narrow, p_w_below_n, 1.0 - p_w_below_n), 0.0, 1.0)
    # E[(T - C)+] - E[(C - T)+] = mu_t - mu_c.
    loss_keep = np.where(t_narrow, loss_n_over_w, loss_n_over_w + gain)
    loss_ship = np.where(t_narrow, loss_n_over_w - gain, loss_n_over_w)
    loss_keep, loss_ship = np.maximum(loss_keep, 0.0), np.maximum(loss_ship, 0.0)

    reason = first_reason([(n_c == 0, Reason.CONTROL_EMPTY), (n_t == 0, Reason.TREATMENT_EMPTY)])
    bad = reason != Reason.OK
    if bad.any():
        for array in (chance, loss_keep, loss_ship):
            array[bad] = np.nan
    return BayesianArrays(
        chance_to_win=chance,
        expected_loss=loss_ship,
        expected_loss_control=loss_keep,
        reason=reason,
    )


def beta_binomial_test(
    control: ProportionStats,
    treatment: ProportionStats,
    prior: BetaPrior | None = None,
    nodes: int = DEFAULT_NODES,
) -> BayesianResult:
    """Chance that the treatment's rate beats the control's, and the expected losses."""
    prior = prior if prior is not None else BetaPrior()
    arrays = beta_binomial_arrays(
        [control.n], [control.successes], [treatment.n], [treatment.successes], prior, nodes
    )
    return BayesianResult(
        chance_to_win=float(arrays.chance_to_win[0]),
        expected_loss=float(arrays.expected_loss[0]),
        expected_loss_control=float(arrays.expected_loss_control[0]),
        control_posterior=(
            prior.alpha + control.successes,
            prior.beta + control.n - control.successes,
        ),
        treatment_posterior=(
            prior.alpha + treatment.successes,
            prior.beta + treatment.n - treatment.successes,
        ),
        error=message(int(arrays.reason[0])),
    )


def beta_credible_interval(
    n_c: np.ndarray, s_c: np.ndarray, n_t: np.ndarray, s_t: np.ndarray, prior: BetaPrior,
    alpha: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Credible interval of ``p_t - p_c`` from the Beta posteriors' means and variances (normal
    approximation of the difference, which the tests check against Monte Carlo draws)."""
    z = normal_critical(alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        a_c, b_c = prior.alpha + s_c, prior.beta + n_c - s_c
        a_t, b_t = prior.alpha + s_t, prior.beta + n_t - s_t
        mean = a_t / (a_t + b_t) - a_c / (a_c + b_c)
        var = (a_t * b_t / ((a_t + b_t) ** 2 * (a_t + b_t + 1))
               + a_c * b_c / ((a_c + b_c) ** 2 * (a_c + b_c + 1)))
    half = z * np.sqrt(var)
    return mean - half, mean + half
