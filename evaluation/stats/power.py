"""Power: the smallest effect the current sample can detect, and the sample a target effect needs.

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
  ``x sqrt(s_c^2/n_c + s_t^2/n_t)``, the Welch-style generalisation.

The MDE of a proportion is reported upwards (the smallest detectable increase).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

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
    z = float(special.ndtri(1 - alpha / 2))
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
    with np.errstate(divide="ignore", invalid="ignore"):
        h = x * np.sqrt(1.0 / n_c + 1.0 / n_t)
        angle = np.arcsin(np.sqrt(p)) + h / 2.0
        target = np.where(angle <= np.pi / 2, np.sin(angle) ** 2, np.nan)
    return target - p, np.where(np.isnan(target), np.nan, h)


def mde_mean_arrays(
    variance_control: ArrayLike,
    n_control: ArrayLike,
    variance_treatment: ArrayLike,
    n_treatment: ArrayLike,
    alpha: float = 0.05,
    power: float = 0.8,
) -> np.ndarray:
    """MDE (absolute difference of means) ``x sqrt(v_c/n_c + v_t/n_t)``, element-wise."""
    x = detectable_z(alpha, power)
    with np.errstate(divide="ignore", invalid="ignore"):
        return x * np.sqrt(
            np.asarray(variance_control, dtype=np.float64) / np.asarray(n_control, np.float64)
            + np.asarray(variance_treatment, np.float64) / np.asarray(n_treatment, np.float64)
        )


def _size_reason(n_control: float, n_treatment: float) -> str | None:
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
    error = _size_reason(n_control, n_treatment)
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
    error = _size_reason(n_control, n_treatment)
    if error is None and std == 0 and t_std == 0:
        error = message(Reason.NO_VARIANCE)
    if error is None:
        absolute = float(
            mde_mean_arrays([std**2], [n_control], [t_std**2], [n_treatment], alpha, power)[0]
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
