"""Tests of two share vectors over the same categories (slices, classes): the chi-square test
of homogeneity and the population stability index, shared by the traffic-mix and the
prediction-distribution checks of the divergence report and the label metrics of the results."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from evaluation.stats.small_samples import MIN_EXPECTED

PSI_EPSILON = 1e-4
PSI_SHIFT = 0.1  # the usual reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major shift


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two count (or share) vectors over the same categories."""
    p = np.asarray(expected, float) / max(float(np.sum(expected)), 1e-300)
    q = np.asarray(actual, float) / max(float(np.sum(actual)), 1e-300)
    p, q = np.maximum(p, epsilon), np.maximum(q, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def homogeneity(offline: np.ndarray, online: np.ndarray) -> tuple[float, float, str | None]:
    """Chi-square test of homogeneity of two count vectors (categories empty in both dropped):
    the statistic, its p-value, and why it must not be read as a shift (:func:`too_few`)."""
    table = np.vstack([offline, online]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return math.nan, math.nan, None
    res = stats.chi2_contingency(table, correction=False)
    return float(res.statistic), float(res.pvalue), too_few(res.expected_freq)


def too_few(expected: np.ndarray) -> str | None:
    """Why the chi-square approximation does not hold for these expected counts (Cochran's
    rule: none under 1, at most a fifth under 5), or None: a handful of online predictions,
    all of one class or slice, would otherwise read as a significant shift (three answers, all
    of one of three equally likely classes: Pearson's p 0.05, the exact multinomial test's 0.11)."""
    counts = np.asarray(expected, dtype=float)
    under = int((counts < MIN_EXPECTED).sum())
    if (counts < 1).any() or under > 0.2 * counts.size:
        return (f"too few counts for the chi-square test: {under} of {counts.size} expected "
                f"counts are under {MIN_EXPECTED:g} (Cochran's rule: none under 1, at most a "
                "fifth under 5), so no shift is judged")
    return None
