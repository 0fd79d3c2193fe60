"""Online class shares against offline ones where units send several requests: a Wald test whose
online covariance is taken over the units, not the answers.

A unit's answers are alike (a game session's bot idles again and again, a user sends the same
kind of input), so Pearson's test of the 2 x K table, which takes each answer as independent,
gives a p far too small: an A/A comparison of 40 units of 50 answers each whose class leanings
vary from unit to unit was "shifted" in most runs. The online shares are ratios of per-unit sums,
``q = sum_i M_i / n`` (``M_i`` the class counts of unit i, ``m_i`` its answers, ``n = sum m_i``),
and their covariance is the delta method's over the K units (the linearisation
:mod:`evaluation.unit_moments` uses for the accuracy bound)::

    V_on = K / (K - 1) * sum_i (M_i - m_i q)(M_i - m_i q)^T / n^2

The offline shares ``p`` come from an offline test of ``n_off`` independent examples, ``V_off =
(diag(s) - s s^T) / n_off`` at the shares both sides pool, ``s = (n_off p + n q) / (n_off + n)``
(their common value under the null, as Pearson's expected counts take it): at ``p`` itself a
class no offline example has would have no variance on either side where every unit gives one
class, and a candidate answering such a class to every unit had ``T = 0``, p 1. Over the
classes seen on either side, less one (the shares sum to 1, so the last adds nothing),
``T = d^T (V_on + V_off)^-1 d`` with ``d = q - p`` is Wald's statistic on ``r`` degrees of freedom
(the covariance's rank). A covariance estimated from K units is itself noisy, and chi-square(r)
made a 12-unit A/A comparison "shifted" 19 times in 100 at 5 %; as Hotelling's T^2, ``F = (K - r)
/ (r (K - 1)) T`` is referred to F(r, K - r) (6.75 in 100; 5.0 at 40 units, where chi-square gave
8.5), and per class ``t = d_j / sqrt(V_on_jj + V_off_jj)`` to Student's t on K - 1, two-sided.
Where units send very different numbers of answers, a few large ones make most of the shares,
so K there is the units' effective number, ``n^2 / sum m_i^2`` (K itself for equal units):
12 units of geometric sizes (mean 30) with their own leanings were "shifted" in 22.5 A/A runs of
100 on F(r, K - r), 6 on the effective number. The estimator's own skew is left: 11 at 30 such
units, 9 at 100, 5 at 300 (:mod:`tests.evaluation.test_prediction_shift_units`). With one answer
per unit ``V_on`` is the multinomial covariance (times K / (K - 1)), and T is the Wald form of
the homogeneity test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

TEST = ("Wald test over units, as Hotelling's T^2 (F): the online shares' covariance taken over "
        "the units' class counts, the offline shares' as a multinomial of the offline n at the "
        "pooled shares")


@dataclass(frozen=True)
class ClusteredShift:
    """The whole table's Wald statistic, its degrees of freedom and p-value (NaN with no more
    units than degrees of freedom); per class the difference ``q - p``, its standard error, t
    and two-sided p (NaN for a class seen on neither side), on ``units - 1`` degrees of
    freedom, `units` the effective number ``n^2 / sum m_i^2`` (K where every unit sent as
    many answers)."""

    statistic: float
    dof: int
    p_value: float
    difference: np.ndarray
    se: np.ndarray
    z: np.ndarray
    p_each: np.ndarray
    units: float

    def interval(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """Each class's difference interval, Student's t on ``units - 1``."""
        half = stats.t.isf(alpha / 2, max(self.units - 1, 1.0)) * self.se
        return self.difference - half, self.difference + half


def online_covariance(units: np.ndarray) -> np.ndarray:
    """The covariance of the online shares over the units, from their K x C class counts."""
    answers = units.sum(axis=1)
    n, k = float(answers.sum()), units.shape[0]
    shares = units.sum(axis=0) / n
    spread = units - np.outer(answers, shares)
    return k / (k - 1) * (spread.T @ spread) / (n * n)


def clustered_shift(offline: np.ndarray, offline_n: float,
                    units: np.ndarray) -> ClusteredShift | None:
    """The test of the module docstring; `offline` holds the offline shares (summing to 1) and
    `units` each unit's counts, both in the same class order. None with fewer than two units or
    two classes seen, where nothing can be tested over units."""
    units = np.asarray(units, dtype=np.float64)
    total = float(units.sum())
    if units.shape[0] < 2 or total <= 0 or offline_n <= 0:
        return None
    online = units.sum(axis=0) / total
    seen = np.flatnonzero((offline > 0) | (online > 0))
    if len(seen) < 2:
        return None
    pooled = (offline_n * offline + total * online) / (offline_n + total)  # the null's shares
    cov = online_covariance(units) + (np.diag(pooled) - np.outer(pooled, pooled)) / offline_n
    difference = online - offline
    kept = seen[:-1]
    block = cov[np.ix_(kept, kept)]
    rank = int(np.linalg.matrix_rank(block))
    statistic = float(difference[kept] @ np.linalg.pinv(block) @ difference[kept])
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    z = np.full(len(offline), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        z[seen] = np.where(se[seen] > 0, difference[seen] / se[seen], np.nan)
    answers = units.sum(axis=1)
    k = total * total / float(np.sum(answers * answers))  # the units' effective number
    p_value = 1.0 if not rank else math.nan if k <= rank else float(
        stats.f.sf((k - rank) / (rank * (k - 1)) * statistic, rank, k - rank))
    p_each = np.where(np.isfinite(z), 2 * stats.t.sf(np.abs(z), max(k - 1, 1.0)), np.nan)
    return ClusteredShift(statistic, rank, p_value, difference, se, z, p_each, k)


def untestable(units: int, effective: float, categories: int, what: str, sent: str) -> str:
    """Why the test over units gave no p-value: its F needs more units than degrees of freedom,
    counted by their effective number, so where one unit sent nearly every answer ten units are
    about one, and saying only "10 units over 4 classes" contradicted itself."""
    said = f"{units} units {sent} {categories} {what}: a test over units needs more units than " \
        f"{what}"
    if effective >= units - 0.05:
        return said
    return (f"{said}, counted by their effective number (n²/Σmᵢ², {effective:.1f} here), as a "
            "few units sent most of the answers; gather more units' answers (a longer window)")


def clustered_mcnemar(answered: np.ndarray, true: np.ndarray) -> float:
    """McNemar's test of one class over units (Durkalski, Palesch, Lipsitz and Rust, Stat Med
    2003): unit i's answers of the class a truth changed (``b_i``) and its answers changed to
    the class (``c_i``) give ``X^2 = (sum d_i)^2 / sum d_i^2`` with ``d_i = b_i - c_i``, on one
    degree of freedom; with one pair per unit it is McNemar's statistic without the continuity
    correction. The p-value; 1 where no unit has a difference."""
    d = np.asarray(answered, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    spread = float(np.sum(d * d))
    if spread <= 0:
        return 1.0
    return float(stats.chi2.sf(float(d.sum()) ** 2 / spread, 1))
