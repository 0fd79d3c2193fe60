"""Ratio metrics by the delta method: sum of a numerator over sum of a denominator, both per
randomisation unit (clicks per session, wins per match), with the variance right when one unit
sends many requests.

The estimate ``R = sum(y) / sum(x)`` over an arm's units is not a mean of independent values,
but to first order it is one: with ``z_i = (y_i - R x_i) / mean(x)``, ``R_hat - R ~ mean(z)``, so

    Var(R_hat) ~ Var(z) / n = (s_yy - 2 R s_xy + R^2 s_xx) / (n mean(x)^2)

(the delta method for a ratio of means; Deng, Knoblich and Lu, "Applying the Delta Method in
Metric Analytics", KDD 2018, section 3). :class:`RatioStats` keeps ``n``, ``R`` and ``Var(z)``
and hands them on as a :class:`~evaluation.stats.sufficient.MeanStats` centred on ``R``, so the
Welch, sequential, Bayesian and power code treats a ratio as the mean it linearises to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from evaluation.stats import checks
from evaluation.stats.sufficient import MeanStats

ONE_UNIT = "one unit: no variance to test with"


@dataclass(frozen=True)
class RatioStats:
    """An arm's ratio: units, the ratio of sums, and the per-unit linearised variance
    (``Var(z)``, ddof = 1); ``error`` says why the figures are NaN, if they are."""

    n: int
    ratio: float
    unit_variance: float
    error: str | None = None

    @property
    def variance_of_ratio(self) -> float:
        """The delta-method variance of the ratio estimate."""
        return self.unit_variance / self.n if self.n else math.nan

    def as_mean_stats(self) -> MeanStats:
        """The linearised values' statistic: mean ``R``, sample variance ``Var(z)``. One unit
        keeps its count and ratio with no variance, so a test says it has too few units rather
        than none; empty only when there is no ratio at all (the denominator sums to zero)."""
        if not math.isfinite(self.ratio):
            return MeanStats(0, 0.0, 0.0)
        squares = (self.n - 1) * self.unit_variance if self.n > 1 else 0.0
        return MeanStats(self.n, 0.0, squares, self.ratio)


def ratio_stats(numerator: ArrayLike, denominator: ArrayLike, zeros: int = 0) -> RatioStats:
    """The ratio statistic of one arm from each unit's numerator and denominator sums, and
    `zeros` more units at 0 over 0 (units that reported neither): they leave the ratio as it
    is but count in ``n`` and ``mean(x)``, each a linearised value of 0."""
    y = np.asarray(numerator, dtype=np.float64).ravel()
    x = np.asarray(denominator, dtype=np.float64).ravel()
    if y.shape != x.shape:
        raise ValueError("numerator and denominator need one value per unit each")
    checks.finite("numerator", y)
    checks.finite("denominator", x)
    if zeros < 0:
        raise ValueError("zeros counts units: it cannot be negative")
    n = int(y.size) + int(zeros)
    if n == 0:
        return RatioStats(0, math.nan, math.nan, "no units")
    mean_x = float(x.sum()) / n
    if mean_x == 0:
        return RatioStats(n, math.nan, math.nan, "the denominator sums to zero")
    ratio = float(y.sum() / x.sum())
    if n == 1:
        return RatioStats(1, ratio, math.nan, ONE_UNIT)
    z = (y - ratio * x) / mean_x
    mean_z = float(z.sum()) / n
    # As z.var(ddof=1) over the n values, the zeros' each adding (0 - mean)^2.
    squares = float(((z - mean_z) ** 2).sum()) + zeros * mean_z * mean_z
    return RatioStats(n, ratio, squares / (n - 1))
