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
    """Count, sum and sum of squares of a numeric metric (latency, edit distance, score).

    The variance is derived as ``(sum_squares - sum**2 / n) / (n - 1)``. That difference loses
    precision when the mean is very large next to the spread (values near 1e8 with a spread of 1),
    which is far from the metrics this service records.
    """

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        n = int(self.n)
        if n != self.n or n < 0:
            raise ValueError(f"n must be a whole number >= 0, got {self.n}")
        total, squares = float(self.sum), float(self.sum_squares)
        if not (math.isfinite(total) and math.isfinite(squares)):
            raise ValueError("sum and sum_squares must be finite")
        if squares < 0:
            raise ValueError("sum_squares cannot be negative")
        if n == 0 and (total != 0 or squares != 0):
            raise ValueError("an empty aggregate must have zero sums")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "sum", total)
        object.__setattr__(self, "sum_squares", squares)

    @classmethod
    def from_values(cls, values: ArrayLike) -> MeanStats:
        """Build from raw observations."""
        data = np.asarray(values, dtype=np.float64).ravel()
        return cls(n=int(data.size), sum=float(data.sum()), sum_squares=float(np.dot(data, data)))

    @property
    def mean(self) -> float:
        """Arithmetic mean; NaN when there are no observations."""
        return self.sum / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance (ddof=1); NaN with fewer than two observations."""
        if self.n < 2:
            return math.nan
        centred = self.sum_squares - self.sum * self.sum / self.n
        return max(centred, 0.0) / (self.n - 1)

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof=1)."""
        return math.sqrt(self.variance)

    def __add__(self, other: object) -> MeanStats:
        if not isinstance(other, MeanStats):
            return NotImplemented
        return MeanStats(
            self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares
        )

    def __radd__(self, other: object) -> MeanStats:
        if isinstance(other, int) and other == 0:
            return self
        return NotImplemented
