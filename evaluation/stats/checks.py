"""Refusing impossible aggregates before any test reads them.

A negative count, more successes than trials, a sum of squares below ``sum**2 / n`` or a NaN
count cannot come from real observations: it means a bug upstream (a bad merge, a lost row), and a
test run on it would print a confident number about nothing. So every entry point, scalar and
array, calls these checks and raises ``ValueError`` with a message that names the bad field.
Empty arms and zero variances are *not* errors: they are normal early in an experiment and are
reported through :mod:`~evaluation.stats.reasons`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

# Sums of squares computed in floating point may undershoot ``sum**2 / n`` by rounding; beyond
# this relative margin the aggregate is impossible rather than rounded.
SQUARES_TOLERANCE = 1e-8


ROUNDING = 8 * float(np.finfo(np.float64).eps)


def centred_squares(squares: ArrayLike, sums: ArrayLike, n: ArrayLike) -> np.ndarray:
    """``sum((x - mean)^2)`` from the sums ``sum(x)`` and ``sum(x^2)``, 0 where it is within
    the sums' rounding of 0 (about ``n * eps * squares``). Ten values of 0.9 leave 1e-16 there,
    not 0 as ten of 10.0 do: read as a variance, that residue made a "valid" test of two
    constant arms (p = 1.5e-64 for 0.9 against 0.8) instead of the zero-variance note."""
    squares, sums, n = (np.asarray(a, dtype=np.float64) for a in (squares, sums, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        centred = squares - sums * sums / n
        return np.where(centred > ROUNDING * n * np.abs(squares), centred, 0.0)


def counts(name: str, values: np.ndarray) -> None:
    """Counts must be finite and non-negative (NaN never reads as 'empty')."""
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).any():
        raise ValueError(f"{name} contains NaN; counts must be numbers >= 0")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} must be finite")
    if (values < 0).any():
        raise ValueError(f"{name} cannot be negative")


def finite(name: str, values: np.ndarray) -> None:
    """Values that must be finite numbers."""
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).any():
        raise ValueError(f"{name} contains NaN")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} must be finite")


def proportions(n_name: str, n: np.ndarray, s_name: str, successes: np.ndarray) -> None:
    """Counts of trials and successes with ``0 <= successes <= n``."""
    counts(n_name, n)
    counts(s_name, successes)
    if (np.asarray(successes) > np.asarray(n)).any():
        raise ValueError(f"{s_name} cannot exceed {n_name} (more successes than observations)")


def moments(prefix: str, n: np.ndarray, sums: np.ndarray, squares: np.ndarray) -> None:
    """``n``, sum and sum of squares of one arm: possible only if ``squares >= sums**2 / n``.

    The sums may be shifted (``x - shift``); the condition is the same for any shift.
    """
    counts(f"{prefix} n", n)
    finite(f"{prefix} sum", sums)
    finite(f"{prefix} sum of squares", squares)
    n, sums, squares = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (n, sums, squares))
    )
    if (squares < 0).any():
        raise ValueError(f"{prefix} sum of squares cannot be negative")
    empty = n == 0
    if ((sums != 0) | (squares != 0))[empty].any():
        raise ValueError(f"{prefix}: an empty aggregate must have zero sums")
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = np.where(empty, 0.0, sums * sums / np.where(empty, 1.0, n))
    if (squares < floor - SQUARES_TOLERANCE * np.maximum(floor, 1e-300)).any():
        raise ValueError(
            f"{prefix} sum of squares is below sum**2 / n: no real observations give that "
            "(a bad merge or a lost row upstream)"
        )
