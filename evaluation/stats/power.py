"""The smallest effect the current sample can detect (absolute, and relative by the delta
method) and the sample a target effect needs; the power at a given effect and sample size is in
:mod:`~evaluation.stats.power_effect`.

All formulas are two-sided normal approximations on a standardized effect ``e``: with
``n_eff = 1 / (1/n_c + 1/n_t)`` and ``z = z_{1-alpha/2}``, the power is

    Phi(e sqrt(n_eff) - z) + Phi(-e sqrt(n_eff) - z)

(both rejection tails, as statsmodels' ``NormalIndPower`` and ``zt_ind_solve_power`` count
them). ``x = e sqrt(n_eff)`` is solved from that equation by Newton's method, so the numbers agree
with statsmodels' root finder rather than with the one-tail shortcut ``x = z + z_power``.

* Proportions use Cohen's arcsine effect size ``h = 2 asin(sqrt(p_t)) - 2 asin(sqrt(p_c))``
  (Cohen, *Statistical Power Analysis*, 1988, ch. 6; statsmodels ``proportion_effectsize``),
  which stabilises the variance so one formula serves every baseline rate.
* Means use ``e = delta / sigma``. With one common ``sigma`` this is exactly statsmodels'
  formula; with two standard deviations the detectable difference is
  ``x sqrt(s_c^2/n_c + s_t^2/n_t)``, the Welch-style generalisation. Below
  :data:`T_EXACT_DF` degrees of freedom (Welch-Satterthwaite's, or ``n_c + n_t - 2`` with one
  ``sigma``) ``x`` is instead the noncentrality at which the t test the results run has the
  power asked (the noncentral t, as :func:`~evaluation.stats.power_effect.power_mean`): the
  normal's ``x`` at 3 observations an arm has 56 % power, not 80 %.

The MDE of a proportion is reported upwards (the smallest detectable increase).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from evaluation.stats import checks
from evaluation.stats.frequentist import check_alpha
from evaluation.stats.reasons import Reason, first_reason, message


@dataclass(frozen=True)
class MinimumDetectableEffect:
    """Smallest true difference detected with probability ``power`` at the current n."""

    absolute: float
    relative: float
    standardized: float
    alpha: float
    power: float
    error: str | None = None


@dataclass(frozen=True)
class SampleSize:
    """Observations needed per arm; ``exact_control`` is the unrounded figure."""

    control: int
    treatment: int
    exact_control: float
    alpha: float
    power: float
    ratio: float
    error: str | None = None


def _check_power(power: float, alpha: float) -> None:
    if not alpha < power < 1:
        raise ValueError(f"power must be in (alpha, 1), got {power}")


@lru_cache(maxsize=256)
def detectable_z(alpha: float = 0.05, power: float = 0.8) -> float:
    """``x = e sqrt(n_eff)`` at which the two-sided z-test has the given power."""
    alpha = check_alpha(alpha)
    _check_power(power, alpha)
    z = -float(special.ndtri(alpha / 2))
    x = z + float(special.ndtri(power))
    for _ in range(50):
        f = special.ndtr(x - z) + special.ndtr(-x - z) - power
        slope = (math.exp(-0.5 * (x - z) ** 2) - math.exp(-0.5 * (x + z) ** 2)) / math.sqrt(
            2 * math.pi
        )
        step = f / slope
        x -= step
        if abs(step) < 1e-13:
            break
    return float(x)


def mde_proportion_arrays(
    baseline_rate: ArrayLike,
    n_control: ArrayLike,
    n_treatment: ArrayLike,
    alpha: float = 0.05,
    power: float = 0.8,
) -> tuple[np.ndarray, np.ndarray]:
    """Upward MDE (absolute difference of rates) and its Cohen's h, element-wise.

    NaN where an arm is empty or no rate up to 1 is detectable.
    """
    x = detectable_z(alpha, power)
    p, n_c, n_t = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (baseline_rate, n_control, n_treatment))
    )
    checks.counts("n_control", n_c)
    checks.counts("n_treatment", n_t)
    if (np.isnan(p) & (n_c > 0)).any():
        raise ValueError("baseline_rate is NaN although the control has observations")
    with np.errstate(divide="ignore", invalid="ignore"):
        h = x * np.sqrt(1.0 / n_c + 1.0 / n_t)
        angle = np.arcsin(np.sqrt(p)) + h / 2.0
        target = np.where(angle <= np.pi / 2, np.sin(angle) ** 2, np.nan)
    return target - p, np.where(np.isnan(target), np.nan, h)


T_EXACT_DF = 1000.0
"""Degrees of freedom below which a mean's MDE comes from the noncentral t (above, the normal
multiplier is within 0.1 % of it)."""


def detectable_t(df: np.ndarray, alpha: float, power: float) -> np.ndarray:
    """The noncentrality at which the two-sided t test on ``df`` degrees of freedom has
    ``power``, element-wise: the normal's :func:`detectable_z` from :data:`T_EXACT_DF` up (and
    where ``df`` is NaN), else solved by the secant method from ``t_{1-alpha/2} + t_power``
    (a vectorised few steps: the full results solve hundreds at once)."""
    x = np.full(df.shape, detectable_z(alpha, power))
    small = (df > 0) & (df < T_EXACT_DF)
    if not small.any():
        return x
    d = df[small]
    crit = special.stdtrit(d, 1 - alpha / 2)

    def short(lam: np.ndarray) -> np.ndarray:  # power at noncentrality lam, less the target
        return special.nctdtr(d, -lam, -crit) + special.nctdtr(d, lam, -crit) - power

    a = crit + special.stdtrit(d, power)
    b = a * 1.02
    fa, fb = short(a), short(b)
    for _ in range(12):
        with np.errstate(divide="ignore", invalid="ignore"):
            step = fb * (b - a) / (fb - fa)
        step = np.where(np.isfinite(step), step, 0.0)
        if not (np.abs(step) > 1e-10 * b).any():
            break
        a, fa = b, fb
        b = b - step
        fb = short(b)
    x[small] = b
    return x


def mde_mean_arrays(
    variance_control: ArrayLike,
    n_control: ArrayLike,
    variance_treatment: ArrayLike,
    n_treatment: ArrayLike,
    alpha: float = 0.05,
    power: float = 0.8,
    equal_var: bool = False,
) -> np.ndarray:
    """MDE (absolute difference of means) ``x sqrt(v_c/n_c + v_t/n_t)``, element-wise, ``x``
    of the t test on Welch-Satterthwaite's degrees of freedom (``n_c + n_t - 2`` with
    ``equal_var``, one common variance): :func:`detectable_t`.

    NaN exactly where an arm has fewer than two observations (no variance estimate); NaN counts
    or a NaN variance beside enough observations raise.
    """
    v_c, n_c, v_t, n_t = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64)
          for a in (variance_control, n_control, variance_treatment, n_treatment))
    )
    checks.counts("n_control", n_c)
    checks.counts("n_treatment", n_t)
    if (np.isnan(v_c) & (n_c >= 2)).any() or (np.isnan(v_t) & (n_t >= 2)).any():
        raise ValueError("a variance is NaN although its arm has at least two observations")
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = v_c / n_c, v_t / n_t
        df = n_c + n_t - 2.0 if equal_var else \
            (a + b) ** 2 / (a**2 / np.maximum(n_c - 1, 1) + b**2 / np.maximum(n_t - 1, 1))
        return detectable_t(np.asarray(df, dtype=np.float64), alpha, power) * np.sqrt(a + b)


def size_reason(n_control: float, n_treatment: float) -> str | None:
    code = first_reason(
        [
            (np.asarray(n_control) <= 0, Reason.CONTROL_EMPTY),
            (np.asarray(n_treatment) <= 0, Reason.TREATMENT_EMPTY),
        ]
    )
    return message(int(code))


def mde_proportion(
    baseline_rate: float,
    n_control: float,
    n_treatment: float,
    alpha: float = 0.05,
    power: float = 0.8,
) -> MinimumDetectableEffect:
    """Smallest detectable increase of a rate at the current sample sizes (arcsine formula)."""
    if not 0 <= baseline_rate <= 1:
        raise ValueError("baseline_rate must be in [0, 1]")
    error = size_reason(n_control, n_treatment)
    if error is None:
        absolute, h = mde_proportion_arrays(
            [baseline_rate], [n_control], [n_treatment], alpha, power
        )
        abs_mde, std_mde = float(absolute[0]), float(h[0])
        if math.isnan(abs_mde):
            error = "no rate up to 1 is detectable at these sample sizes"
    if error is not None:
        abs_mde = std_mde = math.nan
    relative = abs_mde / baseline_rate if baseline_rate > 0 else math.nan
    return MinimumDetectableEffect(abs_mde, relative, std_mde, alpha, power, error)


def mde_mean(
    n_control: float,
    n_treatment: float,
    std: float,
    alpha: float = 0.05,
    power: float = 0.8,
    treatment_std: float | None = None,
    baseline_mean: float | None = None,
) -> MinimumDetectableEffect:
    """Smallest detectable difference of means; ``std`` is the control's (or the common) SD."""
    t_std = std if treatment_std is None else treatment_std
    if not (std >= 0 and t_std >= 0):
        raise ValueError("standard deviations must be non-negative")
    error = size_reason(n_control, n_treatment)
    if error is None and std == 0 and t_std == 0:
        error = message(Reason.NO_VARIANCE)
    if error is None:
        absolute = float(
            mde_mean_arrays([std**2], [n_control], [t_std**2], [n_treatment], alpha, power,
                            equal_var=treatment_std is None)[0]
        )
        pooled = math.sqrt((std**2 + t_std**2) / 2)
        standardized = absolute / pooled
    else:
        absolute = standardized = math.nan
    relative = absolute / abs(baseline_mean) if baseline_mean not in (None, 0) else math.nan
    return MinimumDetectableEffect(absolute, relative, standardized, alpha, power, error)


def _sample_size(effect: float, alpha: float, power: float, ratio: float) -> SampleSize:
    if not ratio > 0:
        raise ValueError("ratio (n_treatment / n_control) must be positive")
    x = detectable_z(alpha, power)
    if effect == 0 or math.isnan(effect):
        return SampleSize(
            0,
            0,
            math.inf,
            alpha,
            power,
            ratio,
            "a zero effect cannot be detected at any sample size",
        )
    exact = x * x * (1.0 + 1.0 / ratio) / (effect * effect)
    # Round the exact figure first so a value like 392.00000000001 does not become 393.
    control = math.ceil(round(exact, 8))
    treatment = math.ceil(round(exact * ratio, 8))
    return SampleSize(control, treatment, exact, alpha, power, ratio)


def sample_size_proportion(
    baseline_rate: float,
    target_rate: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> SampleSize:
    """Per-arm n to detect ``baseline_rate -> target_rate`` (Cohen's h; ``ratio = n_t / n_c``)."""
    if not (0 <= baseline_rate <= 1 and 0 <= target_rate <= 1):
        raise ValueError("rates must be in [0, 1]")
    h = 2 * math.asin(math.sqrt(target_rate)) - 2 * math.asin(math.sqrt(baseline_rate))
    return _sample_size(abs(h), alpha, power, ratio)


def sample_size_mean(
    difference: float,
    std: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> SampleSize:
    """Per-arm n to detect a difference of means with common standard deviation ``std``."""
    if not std > 0:
        raise ValueError("std must be positive")
    return _sample_size(abs(difference) / std, alpha, power, ratio)


def mde_relative(
    baseline_mean: float,
    variance_control: float,
    n_control: float,
    variance_treatment: float | None,
    n_treatment: float,
    alpha: float = 0.05,
    power: float = 0.8,
    is_proportion: bool = False,
    downward: bool = False,
) -> MinimumDetectableEffect:
    """Smallest detectable relative lift ``r`` (upwards; ``downward``: the smallest fall, ``r < 0``,
    for a metric whose lower values are better), by the delta method.

    The relative lift ``(T - C) / |C|`` has variance ``a + (1 + r)^2 b`` with
    ``a = v_t / (n_t C^2)`` and ``b = v_c / (n_c C^2)``, so ``r = x sqrt(a + (1 + r)^2 b)``
    (``x`` from :func:`detectable_z`) is the quadratic
    ``(1 - x^2 b) r^2 - 2 x^2 b r - x^2 (a + b) = 0``, whose positive root is the MDE upwards and
    whose root in ``(-1, 0)`` the MDE downwards (a fall shrinks the treatment's mean, and with it
    the control's share of the noise, so it is detected sooner than a rise of the same size). For
    a proportion the treatment's variance is ``p(1+r)(1 - p(1+r))`` at the root, found by
    fixed-point iteration. No root (``x^2 b >= 1`` upwards, ``x^2 a >= 1`` downwards) means no
    such change is detectable. Below a negative baseline ``T / C = 1 - r``, so the equation is
    the same in ``-r``: a rise shrinks the treatment's magnitude there and is the root that a fall
    is above zero (a mean of -2 read a rise's MDE as 94 % where the delta method gives 57 %).
    """
    x = detectable_z(alpha, power)
    for name, value in (("baseline_mean", baseline_mean), ("variance_control", variance_control),
                        ("n_control", n_control), ("n_treatment", n_treatment)):
        if math.isnan(value):
            raise ValueError(f"{name} is NaN")
    error = size_reason(n_control, n_treatment)
    if error is None and baseline_mean == 0:
        error = "the baseline is zero, so no relative effect is defined"
    if error is None and variance_control < 0:
        raise ValueError("variances must be non-negative")
    r = math.nan
    if error is None:
        c2 = baseline_mean * baseline_mean
        b = variance_control / (n_control * c2)
        v_t = variance_control if variance_treatment is None else variance_treatment
        # The root of the magnitude the treatment's mean moves to: it shrinks where a fall
        # meets a positive baseline or a rise a negative one.
        shrinking, change = downward != (baseline_mean < 0), "fall" if downward else "rise"
        r = 0.0
        for _ in range(100 if is_proportion else 1):
            if is_proportion:
                p_t = min(baseline_mean * (1 + r), 1.0)
                v_t = p_t * (1 - p_t)
            a = v_t / (n_treatment * c2)
            root = _relative_root(a, b, x, shrinking)
            if root is None:
                error = (f"no {change} of the metric is detectable at these sample sizes: the "
                         f"{'treatment' if shrinking else 'control'}'s own noise is too large")
                r = math.nan
                break
            nxt = -root if baseline_mean < 0 else root
            if abs(nxt - r) < 1e-14:
                r = nxt
                break
            r = nxt
        if is_proportion and error is None and baseline_mean * (1 + r) > 1:
            error = "no rate up to 1 is detectable at these sample sizes"
            r = math.nan
    absolute = r * abs(baseline_mean) if error is None else math.nan
    return MinimumDetectableEffect(absolute, r, math.nan, alpha, power, error)


def _relative_root(a: float, b: float, x: float, downward: bool) -> float | None:
    """The root of ``r^2 = x^2 (a + (1 + r)^2 b)`` above 0, or with ``downward`` in ``(-1, 0)``;
    None where there is none (the noise is too large for any such change to be detected)."""
    lead = 1.0 - x * x * b
    if not downward:
        if lead <= 0:
            return None
        return (x * x * b + math.sqrt((x * x * b) ** 2 + lead * x * x * (a + b))) / lead
    if 1.0 - x * x * a <= 0:  # even a fall to 0 is within the noise
        return None
    if lead == 0:
        return -(a + b) / (2 * b)
    return (x * x * b - math.sqrt((x * x * b) ** 2 + lead * x * x * (a + b))) / lead
