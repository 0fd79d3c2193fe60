"""What the tests per unit are built from: the ratios a unit's sums give (each built-in metric's
count and sum per unit, the divergence report's accuracy bound), and their moments.

For a metric with per-unit count ``x_i`` and sum ``y_i`` (corrections over predictions, exact
matches over truths, ...), the delta method needs, per cell, the moments
``K, sum x, sum y, sum x^2, sum y^2, sum xy`` over the units with ``x_i > 0``
(:class:`Moments`). The worker keeps each unit's sums per cell in ``unit_sums``
(:meth:`evaluation.aggregation.Accumulator.unit_rows`); :mod:`evaluation.unit_moments` groups
them into moments when the results are read.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

# Each built-in metric's per-unit count (x) and sum (y) columns.
METRIC_COLUMNS: dict[str, tuple[str, str]] = {
    "correction_rate": ("predictions", "corrected"),
    "error_rate": ("predictions", "errors"),
    "exact_match": ("truths", "exact_sum"),
    "token_edit_distance": ("truths", "edit_sum"),
    "confidence": ("confidence_n", "confidence_sum"),
    "latency_ms": ("latency_n", "latency_sum"),
    "absolute_error": ("number_n", "abs_sum"),
    "squared_error": ("number_n", "sq_sum"),
}
ACCURACY_BOUND = "accuracy_bound"
"""The divergence report's online figure, ``1 - (known_wrong + errors) / predictions``: per unit
its y is ``predictions - errors - truths + exact matches`` (every answer not known wrong; the
truths are those of answers, not of failed predictions)."""
# Every ratio whose moments are kept: x column, then y as (coefficient, column) terms.
RATIOS: dict[str, tuple[str, tuple[tuple[float, str], ...]]] = {
    **{m: (x, ((1.0, y),)) for m, (x, y) in METRIC_COLUMNS.items()},
    ACCURACY_BOUND: ("predictions", ((1.0, "predictions"), (-1.0, "errors"), (-1.0, "truths"),
                                     (1.0, "exact_sum"))),
}


ROUNDING = 8 * sys.float_info.epsilon
"""Per unit summed, the relative rounding a sum of squares may carry (see :meth:`Moments.stats`)."""


class Moments(NamedTuple):
    """Over the units with at least one observation: their number, and the sums of x, y, x^2,
    y^2 and xy."""

    k: float
    sx: float
    sy: float
    sxx: float
    syy: float
    sxy: float

    def __add__(self, other: object) -> Moments:  # type: ignore[override]
        if not isinstance(other, Moments):
            return NotImplemented
        return Moments(*(a + b for a, b in zip(self, other, strict=True)))

    def __sub__(self, other: Moments) -> Moments:
        return Moments(*(a - b for a, b in zip(self, other, strict=True)))

    @classmethod
    def of(cls, x: float, y: float) -> Moments:
        """One unit's contribution (none when it has no observation)."""
        return cls(1.0, x, y, x * x, y * y, x * y) if x > 0 else NO_UNITS

    @property
    def clustered(self) -> bool:
        """Some unit has more than one observation."""
        return self.sxx > self.sx + 0.5

    def stats(self) -> tuple[float, float, float, float]:
        """``(n, shift, sum, sum of squares)`` of the linearised per-unit values: ``n`` = K,
        centred on ``R`` (so the sum is 0) with the delta method's variance."""
        if self.k <= 0 or self.sx <= 0:
            return 0.0, 0.0, 0.0, 0.0
        ratio = self.sy / self.sx
        cross, square = 2 * ratio * self.sxy, ratio * ratio * self.sxx
        residual = self.syy - cross + square
        # A residual within the rounding of its terms (and of the K-term sums they come from) is
        # none: every unit's ratio is the same. Its few ulps read as a variance of 1e-17, a test
        # of p 1e-73 where per prediction the arms had no variance.
        if residual <= ROUNDING * self.k * (self.syy + abs(cross) + square):
            residual = 0.0
        return self.k, ratio, 0.0, self.k * self.k * residual / (self.sx * self.sx)

    def plain(self) -> tuple[float, float, float]:
        """The same as plain ``(n, sum, sum of squares)``."""
        n, shift, _, squares = self.stats()
        return n, n * shift, squares + n * shift * shift


NO_UNITS = Moments(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def ratio_y(terms: tuple[tuple[float, str], ...], columns: Any) -> Any:
    """A ratio's ``y`` from its terms: over SQL columns (an expression) or over one unit's sums
    by column name (a number)."""
    total = None
    for coefficient, name in terms:
        term = columns[name] if coefficient == 1.0 else coefficient * columns[name]
        total = term if total is None else total + term
    return total


def contributions(values: Mapping[str, float]) -> dict[str, Moments]:
    """One unit's contribution to each ratio's moments, from its sums by column name."""
    return {metric: Moments.of(float(values[x]), float(ratio_y(terms, values)))
            for metric, (x, terms) in RATIOS.items()}


def contributions_of_rows(rows: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """:func:`contributions` of many units at once: for rows of unit sums (columns `names`),
    each ratio's per-unit moments as a 6 x units array (one unit at a time in Python took a
    second per 10,000 labelled units on every results read)."""
    columns = {name: rows[:, i] for i, name in enumerate(names)}
    out = {}
    for metric, (x_name, terms) in RATIOS.items():
        x, y = columns[x_name], ratio_y(terms, columns)
        seen = x > 0  # a unit with no observation contributes nothing
        out[metric] = np.where(seen, np.stack([np.ones_like(x), x, y, x * x, y * y, x * y]), 0.0)
    return out
