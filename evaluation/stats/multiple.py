"""Multiple-comparison adjustments within a family of comparisons.

With 400 comparisons, about 20 fall below p = 0.05 by chance alone. Holm's step-down (Holm,
Scand. J. Statist. 1979) controls the family-wise error rate; Benjamini–Hochberg (JRSS B 1995)
controls the false discovery rate and keeps more power when many metrics move. Both give the
same adjusted p-values as statsmodels' ``multipletests`` (methods ``"holm"`` and ``"fdr_bh"``).

NaN p-values (degenerate comparisons) are not counted as tests and stay NaN. The full results
take each slice's (treatment, metric) comparisons as one family (``family_axis``), so the number
of slice strings customers send cannot change the adjusted p-values of slice ``all``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from evaluation.stats.frequentist import check_alpha

Method = Literal["holm", "bh"]


@dataclass(frozen=True, eq=False)
class AdjustedPValues:
    """Adjusted p-values in the input's shape, and which of them reject at ``alpha``."""

    method: str
    alpha: float
    p_adjusted: np.ndarray
    reject: np.ndarray
    n_tests: int


def _adjust_rows(p: np.ndarray, method: Method,
                 alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Adjust each row of a 2-D array as one family; NaN entries are not tests (sorted last).
    The rejects come from the step rule's own comparisons (p_(i) against its threshold), not
    from the adjusted p against alpha, whose product can round a p on a threshold above it."""
    order = np.argsort(p, axis=1, kind="stable")
    p_sorted = np.take_along_axis(p, order, axis=1)
    m = (~np.isnan(p)).sum(axis=1, keepdims=True)
    rank = np.arange(p.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "holm":
            # adjusted p_(i) = max_{j <= i} (m - j + 1) p_(j), capped at 1
            adjusted = np.fmax.accumulate((m - rank) * p_sorted, axis=1)
        else:
            # adjusted p_(i) = min_{j >= i} m / j * p_(j), capped at 1
            scaled = p_sorted * m / (rank + 1)
            adjusted = np.fmin.accumulate(scaled[:, ::-1], axis=1)[:, ::-1]
        if method == "holm":  # step down: reject up to the first p_(i) above alpha / (m - i + 1)
            stop = ~(p_sorted <= alpha / (m - rank))
            last = np.where(stop.any(axis=1), stop.argmax(axis=1), p.shape[1]) - 1
        else:  # step up: reject up to the last p_(i) at or below i alpha / m
            below = p_sorted <= (rank + 1) / m * alpha  # in statsmodels' order of operations
            last = np.where(below.any(axis=1), p.shape[1] - 1 - below[:, ::-1].argmax(axis=1), -1)
    adjusted = np.where(np.isnan(p_sorted), np.nan, np.minimum(adjusted, 1.0))
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=1)
    reject = np.zeros(p.shape, dtype=bool)
    np.put_along_axis(reject, order, rank <= last[:, None], axis=1)
    return out, reject


def adjust_p_values(p_values: ArrayLike, method: Method, alpha: float = 0.05,
                    family_axis: int | None = None) -> AdjustedPValues:
    """Holm or Benjamini–Hochberg adjusted p-values for an array of any shape.

    ``family_axis`` None adjusts the whole array as one family; an axis makes each index along
    it a family of its own (axis 2 of treatments x metrics x slices: one family per slice), so
    how many other families exist cannot change a family's adjusted p-values.
    """
    alpha = check_alpha(alpha)
    if method not in ("holm", "bh"):
        raise ValueError(f"method must be 'holm' or 'bh', got {method!r}")
    p = np.asarray(p_values, dtype=np.float64)
    finite = ~np.isnan(p)
    if ((p[finite] < 0) | (p[finite] > 1)).any():
        raise ValueError("p-values must be in [0, 1]")
    if family_axis is None:
        adjusted, reject = (a.reshape(p.shape)
                            for a in _adjust_rows(p.reshape(1, -1), method, alpha))
    else:
        moved = np.moveaxis(p, family_axis, 0)
        rows = _adjust_rows(moved.reshape(moved.shape[0], int(np.prod(moved.shape[1:]))),
                            method, alpha)
        adjusted, reject = (np.moveaxis(a.reshape(moved.shape), 0, family_axis) for a in rows)
    return AdjustedPValues(
        method=method, alpha=alpha, p_adjusted=adjusted, reject=reject, n_tests=int(finite.sum())
    )


def holm(p_values: ArrayLike, alpha: float = 0.05,
         family_axis: int | None = None) -> AdjustedPValues:
    """Holm–Bonferroni step-down adjustment (family-wise error rate)."""
    return adjust_p_values(p_values, "holm", alpha, family_axis)


def benjamini_hochberg(p_values: ArrayLike, alpha: float = 0.05,
                       family_axis: int | None = None) -> AdjustedPValues:
    """Benjamini–Hochberg step-up adjustment (false discovery rate)."""
    return adjust_p_values(p_values, "bh", alpha, family_axis)
