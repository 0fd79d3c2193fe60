"""Additive sufficient statistics for one arm of an experiment.

The evaluation worker stores one row of these per arm, metric, slice and hour. Because every field
is a plain sum, rows merge with ``+`` (and ``sum()``), so a test never needs the raw observations:
a week of hourly rows summed is exactly the week's statistic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from evaluation.stats import checks


@dataclass(frozen=True, slots=True)
class ProportionStats:
    """Count of observations and of successes for a 0/1 metric (conversion, accepted output)."""

    n: int
    successes: int

    def __post_init__(self) -> None:
        n, successes = int(self.n), int(self.successes)
        if n != self.n or successes != self.successes:
            raise ValueError("n and successes must be whole numbers")
        if n < 0 or successes < 0 or successes > n:
            raise ValueError(f"need 0 <= successes <= n, got n={n}, successes={successes}")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "successes", successes)

    @classmethod
    def from_outcomes(cls, outcomes: ArrayLike) -> ProportionStats:
        """Build from raw 0/1 (or boolean) outcomes."""
        values = np.asarray(outcomes)
        if values.size and not np.isin(values, (0, 1)).all():
            raise ValueError("outcomes must be 0/1 or boolean")
        return cls(n=int(values.size), successes=int(np.count_nonzero(values)))

    @property
    def mean(self) -> float:
        """Success rate; NaN when there are no observations."""
        return self.successes / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Bernoulli variance p(1 - p) of one observation; NaN when there are none."""
        p = self.mean
        return p * (1.0 - p)

    def __add__(self, other: object) -> ProportionStats:
        if not isinstance(other, ProportionStats):
            return NotImplemented
        return ProportionStats(self.n + other.n, self.successes + other.successes)

    def __radd__(self, other: object) -> ProportionStats:
        # Lets the builtin sum() start from 0.
        if isinstance(other, int) and other == 0:
            return self
        return NotImplemented


@dataclass(frozen=True, slots=True)
class MeanStats:
    """Count and *shifted* sum and sum of squares of a numeric metric (latency, edit distance).

    ``sum`` is ``sum(x - shift)`` and ``sum_squares`` is ``sum((x - shift)**2)``. With ``shift``
    near the mean the variance ``(sum_squares - sum**2 / n) / (n - 1)`` keeps its precision
    however large the mean is next to the spread (values near 1e8 with a spread of a few units);
    with ``shift = 0`` these are the plain sums. :meth:`from_values` shifts by the data's own mean
    (centred moments), and ``+`` re-expresses the right operand about the left one's shift before
    adding, which is Chan, Golub and LeVeque's pairwise merge ("Algorithms for computing the
    sample variance", The American Statistician, 1983) written on shifted sums.
    """

    n: int
    sum: float
    sum_squares: float
    shift: float = 0.0

    def __post_init__(self) -> None:
        n = int(self.n)
        if n != self.n or n < 0:
            raise ValueError(f"n must be a whole number >= 0, got {self.n}")
        total, squares, shift = float(self.sum), float(self.sum_squares), float(self.shift)
        if not math.isfinite(shift):
            raise ValueError("shift must be finite")
        checks.moments("MeanStats", np.array([n]), np.array([total]), np.array([squares]))
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "sum", total)
        object.__setattr__(self, "sum_squares", squares)
        object.__setattr__(self, "shift", shift)

    @classmethod
    def from_values(cls, values: ArrayLike) -> MeanStats:
        """Build from raw observations, centred on their mean (two passes, no cancellation)."""
        data = np.asarray(values, dtype=np.float64).ravel()
        checks.finite("values", data)
        if data.size == 0:
            return cls(0, 0.0, 0.0)
        centre = float(data.mean())
        dev = data - centre
        return cls(int(data.size), float(dev.sum()), float(np.dot(dev, dev)), centre)

    @property
    def mean(self) -> float:
        """Arithmetic mean; NaN when there are no observations."""
        return self.shift + self.sum / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance (ddof=1); NaN with fewer than two observations."""
        if self.n < 2:
            return math.nan
        return float(checks.centred_squares(self.sum_squares, self.sum, self.n)) / (self.n - 1)

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof=1)."""
        return math.sqrt(self.variance)

    def shifted(self, shift: float) -> MeanStats:
        """The same statistic expressed about another shift."""
        delta = self.shift - float(shift)  # x - new = (x - old) + delta
        return MeanStats(
            self.n,
            self.sum + self.n * delta,
            self.sum_squares + 2.0 * delta * self.sum + self.n * delta * delta,
            shift,
        )

    def __add__(self, other: object) -> MeanStats:
        if not isinstance(other, MeanStats):
            return NotImplemented
        if self.n == 0:
            return other
        if other.n == 0:
            return self
        right = other if other.shift == self.shift else other.shifted(self.shift)
        return MeanStats(
            self.n + right.n, self.sum + right.sum, self.sum_squares + right.sum_squares,
            self.shift,
        )

    def __radd__(self, other: object) -> MeanStats:
        if isinstance(other, int) and other == 0:
            return self
        return NotImplemented
