"""Fixed-horizon tests of a treatment against its control, from sufficient statistics.

Each test exists in two forms: a kernel over numpy arrays (one element per comparison, used by the
full-results pass) and a scalar function over :mod:`~evaluation.stats.sufficient` objects that
calls the kernel, so both forms give the same numbers.

Conventions: the difference is ``treatment - control``; the confidence interval of the absolute
difference is two-sided at level ``1 - alpha``; the relative lift is ``(treatment - control) /
|control|`` (so a rise from -10 to -5 reads +50 %, not -50 %) with a delta-method interval and
p-value taken from the same distribution as the test (normal for proportions, Welch's t with its
degrees of freedom for means), so the relative interval excludes 0 exactly when its p-value is
below ``alpha``.

Where a figure cannot be given or a method had to change, ``note`` says so: a zero control mean
(no relative lift), or a 2x2 table too small for the normal approximation (fewer than
:data:`MIN_EXPECTED` expected successes or failures in an arm), where the p-value is Fisher's
exact test and the interval Newcombe's hybrid score interval instead of a Wald interval that can
have zero width (0/1 against 1/1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from evaluation.stats import checks
from evaluation.stats.reasons import Reason, first_reason, message
from evaluation.stats.small_samples import (  # noqa: F401 (the notes are imported from here)
    EXTREME_RATE_NOTE,
    MIN_EXPECTED,
    SMALL_SAMPLE_NOTE,
    score_fallbacks,
)
from evaluation.stats.sufficient import MeanStats, ProportionStats

ZERO_CONTROL_NOTE = "the control mean is zero, so there is no relative lift"

@dataclass(frozen=True)
class ComparisonResult:
    """One control-versus-treatment test; ``error`` says why the numbers are NaN, if they are."""

    test: str
    control_mean: float
    treatment_mean: float
    difference: float
    ci_low: float
    ci_high: float
    relative_lift: float
    relative_ci_low: float
    relative_ci_high: float
    statistic: float
    p_value: float
    df: float
    alpha: float
    error: str | None = None
    relative_p_value: float = float("nan")
    note: str | None = None

    @property
    def significant(self) -> bool:
        """Whether the p-value is below ``alpha`` (False for a degenerate result)."""
        return self.error is None and self.p_value < self.alpha


@dataclass(frozen=True, eq=False)
class ComparisonArrays:
    """The kernels' output: arrays of one shape, one element per comparison.

    ``control_variance`` and ``treatment_variance`` are per-observation variances (``p(1-p)``, or
    the sample variance), which the sequential test and the power figures reuse.
    """

    control_mean: np.ndarray
    treatment_mean: np.ndarray
    control_variance: np.ndarray
    treatment_variance: np.ndarray
    difference: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    relative_lift: np.ndarray
    relative_ci_low: np.ndarray
    relative_ci_high: np.ndarray
    statistic: np.ndarray
    p_value: np.ndarray
    df: np.ndarray
    reason: np.ndarray
    relative_p_value: np.ndarray
    note: np.ndarray

    def result(self, index: int | tuple[int, ...], test: str, alpha: float) -> ComparisonResult:
        """One element as a :class:`ComparisonResult`."""
        code = int(self.reason[index])
        return ComparisonResult(
            test=test,
            control_mean=float(self.control_mean[index]),
            treatment_mean=float(self.treatment_mean[index]),
            difference=float(self.difference[index]),
            ci_low=float(self.ci_low[index]),
            ci_high=float(self.ci_high[index]),
            relative_lift=float(self.relative_lift[index]),
            relative_ci_low=float(self.relative_ci_low[index]),
            relative_ci_high=float(self.relative_ci_high[index]),
            statistic=float(self.statistic[index]),
            p_value=float(self.p_value[index]),
            df=float(self.df[index]),
            alpha=alpha,
            error=message(code),
            relative_p_value=float(self.relative_p_value[index]),
            note=self.note[index],
        )


def check_alpha(alpha: float) -> float:
    """Validate a significance level; a bad level is a caller's bug, so it raises."""
    alpha = float(alpha)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return alpha


def normal_critical(alpha: float) -> float:
    """Two-sided standard-normal critical value ``z_{1 - alpha/2}``."""
    return -float(special.ndtri(check_alpha(alpha) / 2))


def relative_lift(
    mean_c: np.ndarray,
    mean_t: np.ndarray,
    var_mean_c: np.ndarray,
    var_mean_t: np.ndarray,
    alpha: float,
    df: np.ndarray | float = np.inf,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Relative lift ``(mean_t - mean_c) / |mean_c|``, its interval, p-value and standard error.

    ``var_mean_*`` are variances of the arm means (already divided by n). First-order Taylor
    expansion of the ratio of two independent means:
    ``Var(T/|C|) ~ Var(T)/C^2 + T^2 Var(C)/C^4`` (e.g. Kohavi, Tang and Xu, *Trustworthy Online
    Controlled Experiments*, 2020, ch. 18); dividing by ``|C|`` flips no sign and leaves the
    variance as it is. Interval and p-value use Student's t with ``df`` (``inf``: the normal), the
    distribution of the arm test. NaN where the control mean is zero.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.abs(mean_c)
        lift = np.where(mean_c != 0, (mean_t - mean_c) / scale, np.nan)
        se = np.sqrt(var_mean_t / mean_c**2 + mean_t**2 * var_mean_c / mean_c**4)
        dof = np.broadcast_to(np.asarray(df, dtype=np.float64), np.shape(lift))
        ok = np.isfinite(lift) & (se > 0) & (dof > 0)
        safe_df = np.where(ok, dof, 1.0)
        crit = special.stdtrit(safe_df, 1.0 - check_alpha(alpha) / 2.0)
        p_value = np.where(ok, 2.0 * special.stdtr(safe_df, -np.abs(lift / se)), np.nan)
        half = crit * se
    return lift, lift - half, lift + half, p_value, se


def _notes(shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, None, dtype=object)


def _blank_invalid(reason: np.ndarray, *arrays: np.ndarray) -> None:
    bad = reason != Reason.OK
    if bad.any():
        for array in arrays:
            array[bad] = np.nan


def proportion_arrays(
    n_control: ArrayLike,
    successes_control: ArrayLike,
    n_treatment: ArrayLike,
    successes_treatment: ArrayLike,
    alpha: float = 0.05,
) -> ComparisonArrays:
    """Two-proportion z-test with pooled variance, and an unpooled Wald interval.

    The test statistic is ``(p_t - p_c) / sqrt(p(1-p)(1/n_c + 1/n_t))`` with the pooled rate
    ``p``; this is statsmodels' ``proportions_ztest`` and, squared, the Pearson chi-square of the
    2x2 table without continuity correction. The interval uses the unpooled standard error
    ``sqrt(p_c(1-p_c)/n_c + p_t(1-p_t)/n_t)`` (statsmodels ``confint_proportions_2indep``,
    ``method="wald"``), because under the alternative the two rates differ. Tables too small for
    either (see the module docstring) get Fisher's exact p-value and Newcombe's interval instead;
    an arm at 0 % or 100 % gets Newcombe's interval (the Wald one has no width there).
    """
    z = normal_critical(alpha)
    n_c, s_c, n_t, s_t = np.broadcast_arrays(
        *(
            np.asarray(a, dtype=np.float64)
            for a in (n_control, successes_control, n_treatment, successes_treatment)
        )
    )
    checks.proportions("n_control", n_c, "successes_control", s_c)
    checks.proportions("n_treatment", n_t, "successes_treatment", s_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_c = s_c / n_c
        p_t = s_t / n_t
        diff = p_t - p_c
        pooled = (s_c + s_t) / (n_c + n_t)
        se_null = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_t))
        stat = diff / se_null
        var_c = p_c * (1.0 - p_c) / n_c
        var_t = p_t * (1.0 - p_t) / n_t
        half = z * np.sqrt(var_c + var_t)
    p_value = 2.0 * special.ndtr(-np.abs(stat))
    rel, rel_lo, rel_hi, rel_p, _ = relative_lift(p_c, p_t, var_c, var_t, alpha)
    reason = first_reason(
        [
            (n_c == 0, Reason.CONTROL_EMPTY),
            (n_t == 0, Reason.TREATMENT_EMPTY),
            (~(se_null > 0), Reason.NO_VARIANCE),
        ]
    )
    ci_low, ci_high = diff - half, diff + half
    note = _notes(stat.shape)
    note[(reason == Reason.OK) & (p_c == 0)] = ZERO_CONTROL_NOTE
    score_fallbacks(s_c, n_c, s_t, n_t, z, reason == Reason.OK, ci_low, ci_high, p_value,
                    (rel_lo, rel_hi, rel_p), note)
    _blank_invalid(reason, stat, p_value, ci_low, ci_high, rel, rel_lo, rel_hi, rel_p)
    return ComparisonArrays(
        control_mean=p_c,
        treatment_mean=p_t,
        control_variance=p_c * (1.0 - p_c),
        treatment_variance=p_t * (1.0 - p_t),
        difference=diff,
        ci_low=ci_low,
        ci_high=ci_high,
        relative_lift=rel,
        relative_ci_low=rel_lo,
        relative_ci_high=rel_hi,
        statistic=stat,
        p_value=p_value,
        df=np.full(stat.shape, np.inf),
        reason=reason,
        relative_p_value=rel_p,
        note=note,
    )


def welch_df(var_c: np.ndarray, n_c: np.ndarray, var_t: np.ndarray, n_t: np.ndarray
             ) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of ``var_c / n_c + var_t / n_t`` (NaN where an arm
    has fewer than two observations)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = var_c / n_c, var_t / n_t
        return (a + b) ** 2 / (a * a / (n_c - 1.0) + b * b / (n_t - 1.0))


def welch_arrays(
    n_control: ArrayLike,
    sum_control: ArrayLike,
    sum_squares_control: ArrayLike,
    n_treatment: ArrayLike,
    sum_treatment: ArrayLike,
    sum_squares_treatment: ArrayLike,
    alpha: float = 0.05,
    shift_control: ArrayLike = 0.0,
    shift_treatment: ArrayLike = 0.0,
) -> ComparisonArrays:
    """Welch's unequal-variance t-test and its t interval, from n, sum and sum of squares.

    ``t = (m_t - m_c) / sqrt(v_t/n_t + v_c/n_c)`` with the Welch–Satterthwaite degrees of
    freedom ``(v_t/n_t + v_c/n_c)^2 / ((v_t/n_t)^2/(n_t-1) + (v_c/n_c)^2/(n_c-1))`` (Welch,
    Biometrika 1947); the same numbers as scipy's ``ttest_ind(equal_var=False)``. The relative
    interval and p-value use the same t distribution, so they agree with the test's small-sample
    caution. Sums may be shifted (``sum(x - shift)``), which keeps the variance exact when the
    mean is large next to the spread.
    """
    check_alpha(alpha)
    n_c, sum_c, ss_c, n_t, sum_t, ss_t, k_c, k_t = np.broadcast_arrays(
        *(
            np.asarray(a, dtype=np.float64)
            for a in (
                n_control,
                sum_control,
                sum_squares_control,
                n_treatment,
                sum_treatment,
                sum_squares_treatment,
                shift_control,
                shift_treatment,
            )
        )
    )
    checks.moments("control", n_c, sum_c, ss_c)
    checks.moments("treatment", n_t, sum_t, ss_t)
    checks.finite("shift", np.concatenate([k_c.ravel(), k_t.ravel()]))
    with np.errstate(divide="ignore", invalid="ignore"):
        d_c = sum_c / n_c  # mean - shift
        d_t = sum_t / n_t
        m_c = k_c + d_c
        m_t = k_t + d_t
        var_c = checks.centred_squares(ss_c, sum_c, n_c) / (n_c - 1.0)
        var_t = checks.centred_squares(ss_t, sum_t, n_t) / (n_t - 1.0)
        vm_c = var_c / n_c
        vm_t = var_t / n_t
        se2 = vm_c + vm_t
        se = np.sqrt(se2)
        diff = (k_t - k_c) + (d_t - d_c)
        stat = diff / se
        df = welch_df(var_c, n_c, var_t, n_t)
    reason = first_reason(
        [
            (n_c == 0, Reason.CONTROL_EMPTY),
            (n_t == 0, Reason.TREATMENT_EMPTY),
            (n_c < 2, Reason.CONTROL_TOO_FEW),
            (n_t < 2, Reason.TREATMENT_TOO_FEW),
            (~(se > 0), Reason.NO_VARIANCE),
        ]
    )
    valid = reason == Reason.OK
    safe_df = np.where(valid, df, 1.0)
    p_value = 2.0 * special.stdtr(safe_df, -np.abs(np.where(valid, stat, 0.0)))
    half = special.stdtrit(safe_df, 1.0 - alpha / 2.0) * np.where(valid, se, 0.0)
    rel, rel_lo, rel_hi, rel_p, _ = relative_lift(m_c, m_t, vm_c, vm_t, alpha, safe_df)
    ci_low, ci_high = diff - half, diff + half
    note = _notes(stat.shape)
    note[valid & (m_c == 0)] = ZERO_CONTROL_NOTE
    _blank_invalid(reason, stat, p_value, ci_low, ci_high, rel, rel_lo, rel_hi, rel_p, df)
    return ComparisonArrays(
        control_mean=m_c,
        treatment_mean=m_t,
        control_variance=var_c,
        treatment_variance=var_t,
        difference=diff,
        ci_low=ci_low,
        ci_high=ci_high,
        relative_lift=rel,
        relative_ci_low=rel_lo,
        relative_ci_high=rel_hi,
        statistic=stat,
        p_value=p_value,
        df=df,
        reason=reason,
        relative_p_value=rel_p,
        note=note,
    )


def two_proportion_ztest(
    control: ProportionStats, treatment: ProportionStats, alpha: float = 0.05
) -> ComparisonResult:
    """Two-proportion z-test (pooled), Wald interval and delta-method relative interval."""
    arrays = proportion_arrays(
        [control.n], [control.successes], [treatment.n], [treatment.successes], alpha
    )
    return arrays.result(0, "two-proportion z", alpha)


def chi_square_test(
    control: ProportionStats, treatment: ProportionStats, alpha: float = 0.05
) -> ComparisonResult:
    """Pearson chi-square test of the 2x2 table, without Yates' continuity correction.

    The statistic is computed from the table as ``N (ad - bc)^2 / (row and column totals)``; its
    p-value (1 degree of freedom) equals the two-sided p-value of the pooled z-test. The
    intervals are those of :func:`two_proportion_ztest`.
    """
    arrays = proportion_arrays(
        [control.n], [control.successes], [treatment.n], [treatment.successes], alpha
    )
    if int(arrays.reason[0]) != Reason.OK:
        return arrays.result(0, "chi-square", alpha)
    a, b = treatment.successes, treatment.n - treatment.successes
    c, d = control.successes, control.n - control.successes
    total = a + b + c + d
    # Exact integers until the last division, so large tables lose no precision.
    chi2 = total * (a * d - b * c) ** 2 / ((a + b) * (c + d) * (a + c) * (b + d))
    p_value = float(special.chdtrc(1, chi2))
    base = arrays.result(0, "chi-square", alpha)
    if base.note == SMALL_SAMPLE_NOTE:  # keep Fisher's exact p-value, as the note says
        return replace(base, statistic=float(chi2), df=1.0)
    return replace(base, statistic=float(chi2), p_value=p_value, df=1.0)


def welch_ttest(control: MeanStats, treatment: MeanStats, alpha: float = 0.05) -> ComparisonResult:
    """Welch's t-test of ``treatment - control`` from summary statistics."""
    arrays = welch_arrays(
        [control.n],
        [control.sum],
        [control.sum_squares],
        [treatment.n],
        [treatment.sum],
        [treatment.sum_squares],
        alpha,
        [control.shift],
        [treatment.shift],
    )
    return arrays.result(0, "welch t", alpha)
