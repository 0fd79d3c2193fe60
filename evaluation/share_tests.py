"""Tests of two share vectors over the same categories (slices, classes): the chi-square test
of homogeneity and the population stability index, shared by the traffic-mix and the
prediction-distribution checks of the divergence report and the label metrics of the results."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

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
    return float(res.statistic), float(res.pvalue), too_few(table[1].sum(), table.shape[1])


def too_few(online: float, categories: int) -> str | None:
    """Why `online` counts over `categories` are too few for the chi-square approximation, or
    None. Koehler and Larntz's rule for sparse tables (JASA 1980): at least 10 counts, and
    n^2 / K at least 10; it allows the rare categories a skewed distribution has (an action
    a game bot almost never takes), which Cochran's "expected counts of 5" would not, while a
    handful of answers of one class is no shift (three of one of three equally likely classes:
    Pearson's p 0.05, the exact multinomial test's 0.11)."""
    if online < 10 or online * online / max(categories, 1) < 10:
        return (f"too few online counts for the chi-square test: {online:g} over {categories} "
                "categories (Koehler and Larntz's rule: at least 10, and n^2/K at least 10), "
                "so no shift is judged")
    return None


def too_few_units(units: int, categories: int) -> str | None:
    """:func:`too_few` applied to the units of a test over units: a handful of units is no
    shift, however many requests each sent."""
    if too_few(units, categories) is None:
        return None
    return (f"too few units for the test over units: {units} over {categories} categories "
            "(Koehler and Larntz's rule, on units: at least 10, and units^2/K at least 10), "
            "so no shift is judged")
