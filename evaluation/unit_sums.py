"""Each unit's sums of the built-in metrics, and their moments per experiment cell, as the
worker keeps them: what lets the results take the unit, not the prediction, as the independent
observation (:mod:`evaluation.unit_moments` reads them).

For a metric with per-unit count ``x_i`` and sum ``y_i`` (corrections over predictions, exact
matches over truths, ...), the delta method needs, per cell, the moments
``K, sum x, sum y, sum x^2, sum y^2, sum xy`` over the units with ``x_i > 0``. They are not
additive over events (a unit's second prediction changes its ``x_i^2`` by ``2 x_i + 1``), so the
worker keeps each unit's sums per cell in ``unit_sums`` (and once more summed over the unit's
slices, under the slice :data:`~evaluation.aggregation.TOTAL`), reads each row's new sums back
from the same upsert, and adds the change of the unit's contribution, new minus old, to the
cell's row in ``unit_moments``: exact under replays (the stream applies each event once) and
under concurrent workers (the upsert returns each row's sums under its lock), and the results
read a few rows per cell instead of grouping every unit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from evaluation import aggregation as agg

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
"""The divergence report's online figure, ``1 - known_wrong / predictions``: per unit its y is
``predictions - truths + exact matches`` (every answer not known wrong)."""
# Every ratio whose moments are kept: x column, then y as (coefficient, column) terms.
RATIOS: dict[str, tuple[str, tuple[tuple[float, str], ...]]] = {
    **{m: (x, ((1.0, y),)) for m, (x, y) in METRIC_COLUMNS.items()},
    ACCURACY_BOUND: ("predictions", ((1.0, "predictions"), (-1.0, "truths"),
                                     (1.0, "exact_sum"))),
}
MOMENT_KEYS = ("experiment_id", "arm", "candidate", "shadow", "slice", "metric")
MOMENT_COLUMNS = ("k", "sx", "sy", "sxx", "syy", "sxy")


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
        residual = max(self.syy - 2 * ratio * self.sxy + ratio * ratio * self.sxx, 0.0)
        return self.k, ratio, 0.0, self.k * self.k * residual / (self.sx * self.sx)

    def plain(self) -> tuple[float, float, float]:
        """The same as plain ``(n, sum, sum of squares)``."""
        n, shift, _, squares = self.stats()
        return n, n * shift, squares + n * shift * shift


NO_UNITS = Moments(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def contributions(values: Mapping[str, float]) -> dict[str, Moments]:
    """One unit's contribution to each ratio's moments, from its sums by column name."""
    out = {}
    for metric, (x_name, terms) in RATIOS.items():
        y = sum(coefficient * values[name] for coefficient, name in terms)
        out[metric] = Moments.of(values[x_name], y)
    return out


def moment_rows(after: Iterable[Any], added: Mapping[tuple[Any, ...], Mapping[str, Any]]
                ) -> list[dict[str, Any]]:
    """Additive ``unit_moments`` rows, sorted by key: for each unit row's sums ``after`` an
    upsert (rows with the ``unit_sums`` columns), the change of its contribution from before
    the upsert (``after`` minus what it ``added``, by the row's key; a row absent from
    ``added`` was all new)."""
    change: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0] * 6)
    for row in after:
        key = (int(row.experiment_id), row.arm, row.candidate, bool(row.shadow), row.slice,
               row.unit_id)
        new = {c: float(getattr(row, c)) for c in agg.UNIT_COLUMNS}
        delta = added.get(key, new)
        old = {c: new[c] - float(delta[c]) for c in agg.UNIT_COLUMNS}
        before = contributions(old)
        for metric, now in contributions(new).items():
            if now != before[metric]:
                sums = change[(*key[:5], metric)]
                for i, d in enumerate(now - before[metric]):
                    sums[i] += d
    return [{**dict(zip(MOMENT_KEYS, key, strict=True)),
             **dict(zip(MOMENT_COLUMNS, sums, strict=True))}
            for key, sums in sorted(change.items())]
