"""Sufficient statistics of a whole experiment: arms x metrics x slices, as numpy arrays.

This is the array form of :mod:`~evaluation.stats.sufficient`: the worker sums one of these per
hour, and :func:`~evaluation.stats.full_results.analyze` reads it in one vectorised pass. Arm 0 is
the control. For a proportion metric ``sums`` holds the successes and ``sum_squares`` equals
``sums`` (0 and 1 are their own squares).

For mean metrics the sums may be *shifted*: ``sums = sum(x - shift)`` and ``sum_squares =
sum((x - shift)**2)`` with one ``shift`` per cell (zero by default, the plain sums). A shift near
the cell's mean keeps the variance exact when the mean is large next to the spread;
:meth:`ExperimentAggregates.from_long_rows` centres each cell on its mean where plain sums would
lose precision, and ``+`` re-expresses
the right operand about the left one's shifts before adding (see
:class:`~evaluation.stats.sufficient.MeanStats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from evaluation.stats import checks

# Ratio of the plain sum of squares to the centred one beyond which a cell is re-summed centred
# (a relative error of about 1e-16 * 1e6 = 1e-10 in the variance is the most we accept).
CANCELLATION = 1e6


def _names(given: Sequence[str], count: int, default: Sequence[str]) -> tuple[str, ...]:
    names = tuple(str(x) for x in given) if given else tuple(default)
    if len(names) != count:
        raise ValueError(f"expected {count} names, got {len(names)}")
    if len(set(names)) != count:
        raise ValueError("names must be unique")
    return names


def _frozen(values: ArrayLike) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class ExperimentAggregates:
    """n, (shifted) sum and sum of squares per (arm, metric, slice); arm 0 is the control."""

    n: np.ndarray
    sums: np.ndarray
    sum_squares: np.ndarray
    is_proportion: np.ndarray
    arm_names: tuple[str, ...] = ()
    metric_names: tuple[str, ...] = ()
    slice_names: tuple[str, ...] = ()
    shift: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = _frozen(self.n)
        if n.ndim != 3 or n.shape[0] < 2:
            raise ValueError("n must have shape (arms >= 2, metrics, slices)")
        sums = _frozen(self.sums)
        is_prop = np.array(self.is_proportion, dtype=bool)
        is_prop.flags.writeable = False
        if sums.shape != n.shape:
            raise ValueError("sums must have the shape of n")
        if is_prop.shape != (n.shape[1],):
            raise ValueError("is_proportion needs one flag per metric")
        squares = np.where(is_prop[None, :, None], sums, np.asarray(self.sum_squares, float))
        squares = _frozen(squares)
        if squares.shape != n.shape:
            raise ValueError("sum_squares must have the shape of n")
        props = np.broadcast_to(is_prop[None, :, None], n.shape)
        checks.counts("n", n)
        checks.proportions("n", n[props], "successes", sums[props])
        checks.moments("mean metric", n[~props], sums[~props], squares[~props])
        shift = _frozen(np.zeros(n.shape) if self.shift is None else self.shift)
        if shift.shape != n.shape:
            raise ValueError("shift must have the shape of n")
        checks.finite("shift", shift)
        if (shift[props] != 0).any():
            raise ValueError("proportion metrics take no shift")
        object.__setattr__(self, "shift", shift)
        arms, metrics, slices = n.shape
        arm_default = ["control", *(f"treatment_{i}" for i in range(1, arms))]
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "sums", sums)
        object.__setattr__(self, "sum_squares", squares)
        object.__setattr__(self, "is_proportion", is_prop)
        object.__setattr__(self, "arm_names", _names(self.arm_names, arms, arm_default))
        object.__setattr__(
            self,
            "metric_names",
            _names(self.metric_names, metrics, [f"metric_{i}" for i in range(metrics)]),
        )
        object.__setattr__(
            self,
            "slice_names",
            _names(self.slice_names, slices, [f"slice_{i}" for i in range(slices)]),
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        """(arms, metrics, slices)."""
        arms, metrics, slices = self.n.shape
        return arms, metrics, slices

    @classmethod
    def from_long_rows(
        cls,
        arm: ArrayLike,
        metric: ArrayLike,
        slice_: ArrayLike,
        value: ArrayLike,
        is_proportion: Sequence[bool] | ArrayLike,
        *,
        n_arms: int,
        n_slices: int,
        arm_names: Sequence[str] = (),
        metric_names: Sequence[str] = (),
        slice_names: Sequence[str] = (),
    ) -> ExperimentAggregates:
        """Aggregate raw rows (one observation of one metric each) with three ``np.bincount``.

        ``arm``, ``metric`` and ``slice_`` are integer codes starting at 0.
        """
        flags = np.asarray(is_proportion, dtype=bool)
        n_metrics = flags.size
        arms = np.asarray(arm)
        metrics = np.asarray(metric)
        slices = np.asarray(slice_)
        values = np.asarray(value, dtype=np.float64)
        if not (arms.shape == metrics.shape == slices.shape == values.shape):
            raise ValueError("arm, metric, slice and value must have the same length")
        for name, codes, bound in (
            ("arm", arms, n_arms),
            ("metric", metrics, n_metrics),
            ("slice", slices, n_slices),
        ):
            if codes.size and (codes.min() < 0 or codes.max() >= bound):
                raise ValueError(f"{name} codes must be in [0, {bound})")
        key = arms.astype(np.intp) * n_metrics
        key += metrics
        key *= n_slices
        key += slices
        size = n_arms * n_metrics * n_slices
        shape = (n_arms, n_metrics, n_slices)
        checks.finite("value", values)
        counts = np.bincount(key, minlength=size)
        sums = np.bincount(key, weights=values, minlength=size)
        squares = np.bincount(key, weights=values * values, minlength=size)
        centre = np.zeros(size)
        with np.errstate(divide="ignore", invalid="ignore"):
            m2 = squares - sums * sums / counts
            # Plain sums lose about ``eps * squares / m2`` of the variance; past CANCELLATION a
            # second pass centres each cell on its mean, so big offsets cost time, not accuracy.
            risky = (counts > 1) & ~(squares <= CANCELLATION * m2)
        risky &= ~np.broadcast_to(flags[None, :, None], shape).ravel()
        if risky.any():
            centre = np.where(risky, sums / np.maximum(counts, 1), 0.0)
            dev = values - centre[key]
            sums = np.bincount(key, weights=dev, minlength=size)
            squares = np.bincount(key, weights=dev * dev, minlength=size)
        return cls(
            counts.reshape(shape), sums.reshape(shape), squares.reshape(shape), flags,
            tuple(arm_names), tuple(metric_names), tuple(slice_names), centre.reshape(shape),
        )

    @property
    def means(self) -> np.ndarray:
        """Mean per cell (NaN where empty)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.shift + self.sums / self.n

    def __add__(self, other: object) -> ExperimentAggregates:
        if not isinstance(other, ExperimentAggregates):
            return NotImplemented
        if (
            other.shape != self.shape
            or other.arm_names != self.arm_names
            or other.metric_names != self.metric_names
            or other.slice_names != self.slice_names
            or not np.array_equal(other.is_proportion, self.is_proportion)
        ):
            raise ValueError("aggregates of different layouts cannot be merged")
        # Re-express the other side's sums about this side's shifts: x - a = (x - b) + (b - a).
        # An empty side takes the other's shift, so merging into an empty hour loses nothing.
        base = np.where(self.n > 0, self.shift, other.shift)
        d_self, d_other = self.shift - base, other.shift - base
        sums_s = self.sums + self.n * d_self
        sums_o = other.sums + other.n * d_other
        sq_s = self.sum_squares + 2 * d_self * self.sums + self.n * d_self**2
        sq_o = other.sum_squares + 2 * d_other * other.sums + other.n * d_other**2
        props = self.is_proportion[None, :, None]
        return ExperimentAggregates(
            self.n + other.n,
            sums_s + sums_o,
            np.where(props, sums_s + sums_o, sq_s + sq_o),
            self.is_proportion,
            self.arm_names,
            self.metric_names,
            self.slice_names,
            base,
        )
