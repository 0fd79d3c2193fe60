"""Beta-Binomial chance to win and expected loss against closed forms and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from evaluation.stats import BetaPrior, ProportionStats, beta_binomial_arrays, beta_binomial_test


def evan_miller_probability(a_c: int, b_c: int, a_t: int, b_t: int) -> float:
    """P(T > C) for integer a_t (Evan Miller, "Formulas for Bayesian A/B Testing", 2015):

    sum_{i=0}^{a_t - 1} B(a_c + i, b_c + b_t) / ((b_t + i) B(1 + i, b_t) B(a_c, b_c)).
    """
    i = np.arange(a_t)
    terms = (
        special.betaln(a_c + i, b_c + b_t)
        - np.log(b_t + i)
        - special.betaln(1 + i, b_t)
        - special.betaln(a_c, b_c)
    )
    return float(np.exp(terms).sum())


def test_published_chance_to_win():
    # Posteriors Beta(21, 200) and Beta(31, 200): 0.906704245199, the value printed by the
    # notebook sharnett/AB-testing "evan_miller_formula" for Evan Miller's closed form.
    result = beta_binomial_test(ProportionStats(219, 20), ProportionStats(229, 30))
    assert result.chance_to_win == pytest.approx(0.906704245199, abs=1e-11)
    assert result.control_posterior == (21.0, 200.0)
    assert result.treatment_posterior == (31.0, 200.0)


@pytest.mark.parametrize(
    ("control", "treatment"),
    [
        ((100, 10), (120, 17)),
        ((2000, 200), (2100, 190)),
        ((5, 0), (7, 7)),
        ((40, 39), (3, 1)),
        ((1000, 1), (50, 0)),
        ((3000, 1500), (10, 6)),
    ],
)
def test_chance_to_win_matches_evan_millers_closed_form(control, treatment):
    result = beta_binomial_test(ProportionStats(*control), ProportionStats(*treatment))
    (n_c, s_c), (n_t, s_t) = control, treatment
    expected = evan_miller_probability(1 + s_c, 1 + n_c - s_c, 1 + s_t, 1 + n_t - s_t)
    assert result.chance_to_win == pytest.approx(expected, abs=1e-9)


def test_expected_loss_matches_direct_integration():
    # E[max(C - T, 0)] = int int (c - t)+ f_C(c) f_T(t) dc dt, by scipy's dblquad.
    control, treatment = ProportionStats(300, 30), ProportionStats(280, 35)
    result = beta_binomial_test(control, treatment)
    c_post, t_post = stats.beta(31, 271), stats.beta(36, 246)
    loss, _ = integrate.dblquad(
        lambda c, t: (c - t) * c_post.pdf(c) * t_post.pdf(t),
        0.0,
        0.4,
        lambda t: t,
        0.4,
        epsabs=1e-13,
    )
    assert result.expected_loss == pytest.approx(loss, rel=1e-6)
    # E[(T - C)+] - E[(C - T)+] = E[T] - E[C].
    assert result.expected_loss_control - result.expected_loss == pytest.approx(
        36 / 282 - 31 / 302, abs=1e-12
    )


def test_against_monte_carlo():
    rng = np.random.default_rng(42)
    draws = 1_000_000
    control, treatment = ProportionStats(5000, 480), ProportionStats(5100, 530)
    c = rng.beta(1 + 480, 1 + 5000 - 480, draws)
    t = rng.beta(1 + 530, 1 + 5100 - 530, draws)
    result = beta_binomial_test(control, treatment)
    p = np.mean(t > c)
    assert result.chance_to_win == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / draws))
    loss = np.maximum(c - t, 0.0)
    assert result.expected_loss == pytest.approx(loss.mean(), abs=4 * loss.std() / 1000)
    gain = np.maximum(t - c, 0.0)
    assert result.expected_loss_control == pytest.approx(gain.mean(), abs=4 * gain.std() / 1000)


def test_swapping_arms_complements_the_chance():
    a, b = ProportionStats(800, 90), ProportionStats(60, 9)
    forward, backward = beta_binomial_test(a, b), beta_binomial_test(b, a)
    assert forward.chance_to_win + backward.chance_to_win == pytest.approx(1.0, abs=1e-12)
    assert forward.expected_loss == pytest.approx(backward.expected_loss_control, rel=1e-9)


def test_prior_is_configurable():
    control, treatment = ProportionStats(10, 2), ProportionStats(10, 4)
    jeffreys = beta_binomial_test(control, treatment, prior=BetaPrior(0.5, 0.5))
    c = stats.beta(2.5, 8.5)
    t = stats.beta(4.5, 6.5)
    expected, _ = integrate.quad(lambda x: c.pdf(x) * t.sf(x), 0, 1, epsabs=1e-13)
    assert jeffreys.chance_to_win == pytest.approx(expected, abs=1e-8)
    assert jeffreys.control_posterior == (2.5, 8.5)
    # No success: Beta(0.5, 10.5) is infinite at 0, which a polynomial rule cannot integrate
    # (nodes spaced in x were 2.8e-4 off).
    jeffreys = beta_binomial_test(ProportionStats(10, 0), treatment, prior=BetaPrior(0.5, 0.5))
    c = stats.beta(0.5, 10.5)
    expected, _ = integrate.quad(lambda x: c.pdf(x) * t.sf(x), 0, 1, epsabs=1e-13, limit=500)
    assert jeffreys.chance_to_win == pytest.approx(expected, abs=5e-5)
    with pytest.raises(ValueError):
        BetaPrior(0.0, 1.0)


def test_large_counts_stay_accurate():
    # A million units per arm: posteriors are narrow; compare to the normal limit.
    result = beta_binomial_test(
        ProportionStats(1_000_000, 100_000), ProportionStats(1_000_000, 100_600)
    )
    sd = math.sqrt(2 * 0.1003 * 0.8997 / 1_000_002)
    assert result.chance_to_win == pytest.approx(stats.norm.cdf(0.0006 / sd), abs=2e-3)


def test_vectorised_matches_scalar():
    n_c = np.array([100, 2000, 50_000])
    s_c = np.array([10, 190, 5_100])
    arrays = beta_binomial_arrays(n_c, s_c, n_c, s_c + 7)
    for i in range(3):
        single = beta_binomial_test(
            ProportionStats(int(n_c[i]), int(s_c[i])), ProportionStats(int(n_c[i]), int(s_c[i] + 7))
        )
        assert arrays.chance_to_win[i] == single.chance_to_win


def test_bayesian_control_without_observations():
    result = beta_binomial_test(ProportionStats(0, 0), ProportionStats(10, 5))
    assert result.error == "control has no observations"
    assert math.isnan(result.chance_to_win) and math.isnan(result.expected_loss)


def test_bayesian_treatment_without_observations():
    result = beta_binomial_test(ProportionStats(10, 5), ProportionStats(0, 0))
    assert result.error == "treatment has no observations"


def test_bayesian_all_successes_is_still_defined():
    # Unlike the z-test, the posterior is proper even when every trial succeeded.
    result = beta_binomial_test(ProportionStats(50, 50), ProportionStats(70, 70))
    expected = evan_miller_probability(51, 1, 71, 1)
    assert result.error is None
    assert result.chance_to_win == pytest.approx(expected, abs=1e-9)


def _difference_quantile(control: tuple[int, int], treatment: tuple[int, int], q: float,
                         prior: BetaPrior) -> float:
    """Quantile of T - C by adaptive quadrature of its CDF and a root finder (scipy)."""
    c = stats.beta(prior.alpha + control[1], prior.beta + control[0] - control[1])
    t = stats.beta(prior.alpha + treatment[1], prior.beta + treatment[0] - treatment[1])

    def cdf(d: float) -> float:
        return integrate.quad(lambda x: c.pdf(x) * t.cdf(x + d), 0, 1, epsabs=1e-13, limit=500,
                              points=[c.mean()])[0]

    from scipy.optimize import brentq
    return brentq(lambda d: cdf(d) - q, -1, 1, xtol=1e-12)


@pytest.mark.parametrize(("control", "treatment"), [
    ((5, 0), (5, 5)), ((5, 1), (5, 4)), ((30, 0), (30, 2)), ((1, 0), (1, 1)), ((3, 3), (200, 1)),
    ((1000, 1), (12, 6)), ((50_000, 25_000), (50_000, 25_300)), ((2000, 200), (2000, 240)),
])
def test_credible_interval_is_the_posterior_difference_quantiles(control, treatment):
    # A normal approximation put 0/5 against 5/5 at [0.371, 1.057]; the quantiles are
    # [0.301, 0.960].
    from evaluation.stats.bayesian import beta_credible_interval

    prior = BetaPrior()
    low, high = beta_credible_interval(*(np.array([float(v)]) for v in (*control, *treatment)),
                                       prior, 0.05)
    assert low[0] == pytest.approx(_difference_quantile(control, treatment, 0.025, prior), abs=1e-6)
    assert high[0] == pytest.approx(_difference_quantile(control, treatment, 0.975, prior),
                                    abs=1e-6)
    assert -1 <= low[0] < high[0] <= 1


@pytest.mark.parametrize(("prior", "tolerance"), [
    (BetaPrior(), 1e-6), (BetaPrior(2.0, 8.0), 1e-6),
    # Under 1, a posterior with no success (or no failure) has an infinite density at 0 (or 1).
    (BetaPrior(0.5, 0.5), 2e-3),
])
def test_credible_interval_under_other_priors_and_many_at_once(prior, tolerance):
    from evaluation.stats.bayesian import beta_credible_interval

    rng = np.random.default_rng(3)
    n = rng.integers(1, 400, (2, 16))
    s = np.floor(n * rng.random((2, 16)))
    s[:, :3] = 0
    s[0, 3:5] = n[0, 3:5]
    low, high = beta_credible_interval(n[0].astype(float), s[0], n[1].astype(float), s[1], prior,
                                       0.1)
    for k in range(16):
        pair = (int(n[0, k]), int(s[0, k])), (int(n[1, k]), int(s[1, k]))
        assert low[k] == pytest.approx(_difference_quantile(*pair, 0.05, prior), abs=tolerance)
        assert high[k] == pytest.approx(_difference_quantile(*pair, 0.95, prior), abs=tolerance)


@pytest.mark.parametrize(("control", "treatment"), [((30, 7), (30, 7)), ((30, 7), (30, 23))])
def test_equal_posterior_widths_integrate_like_any_other(control, treatment):
    # Identical or mirrored arms have equal sds: the chance to win and the interval both pick
    # one narrow arm on such a tie, and still match the references.
    from evaluation.stats.bayesian import beta_credible_interval

    (n_c, s_c), (n_t, s_t) = control, treatment
    result = beta_binomial_test(ProportionStats(*control), ProportionStats(*treatment))
    expected = evan_miller_probability(1 + s_c, 1 + n_c - s_c, 1 + s_t, 1 + n_t - s_t)
    assert result.chance_to_win == pytest.approx(expected, abs=1e-9)
    low, high = beta_credible_interval(*(np.array([float(v)]) for v in (*control, *treatment)),
                                       BetaPrior(), 0.05)
    assert low[0] == pytest.approx(_difference_quantile(control, treatment, 0.025, BetaPrior()),
                                   abs=1e-6)
    assert high[0] == pytest.approx(_difference_quantile(control, treatment, 0.975, BetaPrior()),
                                    abs=1e-6)
