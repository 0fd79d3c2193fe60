"""Every comparison of an experiment in one vectorised pass.

For each treatment x metric x slice against the control in the same slice this computes the
fixed-horizon test (two-proportion z for proportion metrics, Welch t for mean metrics) with
absolute and relative intervals (the relative ones with their own p-value), the chance to win and
expected losses (Beta-Binomial for proportion metrics, Gaussian posterior for means) with
credible intervals of the difference (means) and of the relative lift (both, normal
approximation), the mSPRT always-valid p-value and intervals (absolute and relative), the MDE at
the current sample sizes, and Holm and Benjamini–Hochberg adjustments within each slice (its
treatments x metrics form one family).
``error`` says why a row is empty; ``note`` says why a figure in a valid row is missing or how it
was computed (a zero control mean, an exact test on a small table). The
kernels are the same ones the scalar functions use, so a single comparison gives identical numbers
either way.

Sequential figures are those of the current look. A caller that keeps the previous look's values
obtains the running versions with ``np.minimum`` of the p-values and the intersection of the
intervals (see :mod:`~evaluation.stats.sequential`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from evaluation.stats import checks
from evaluation.stats.aggregates import ExperimentAggregates
from evaluation.stats.bayesian import (
    DEFAULT_NODES,
    BetaPrior,
    beta_binomial_arrays,
    beta_credible_interval,
)
from evaluation.stats.bayesian_means import gaussian_arrays
from evaluation.stats.frequentist import (
    check_alpha,
    proportion_arrays,
    welch_arrays,
)
from evaluation.stats.multiple import benjamini_hochberg, holm
from evaluation.stats.power import mde_mean_arrays, mde_proportion_arrays
from evaluation.stats.reasons import messages
from evaluation.stats.sequential import SequentialConfig
from evaluation.stats.sequential_arms import arm_sequential
from evaluation.stats.srm import DEFAULT_SRM_THRESHOLD, srm_arrays


@dataclass(frozen=True)
class AnalysisConfig:
    """Settings of one full-results pass."""

    alpha: float = 0.05
    power: float = 0.8
    prior: BetaPrior = field(default_factory=BetaPrior)
    sequential_tuning_n: float = 5000.0
    sequential_mixture_variance: float | None = None
    # Treatment arms the decision may act on: each always-valid interval is at alpha / this
    # (Bonferroni), so the chance that any arm is shipped or stopped by chance stays below alpha.
    # None: every treatment row of the aggregates (shadows included, which only errs safe).
    sequential_family: int | None = None
    srm_threshold: float = DEFAULT_SRM_THRESHOLD
    quadrature_nodes: int = DEFAULT_NODES

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        if not self.alpha < self.power < 1:
            raise ValueError("power must be in (alpha, 1)")
        if not 0 < self.srm_threshold < 1:
            raise ValueError("srm_threshold must be in (0, 1)")
        if self.sequential_family is not None and self.sequential_family < 1:
            raise ValueError("sequential_family must be at least 1")

    @property
    def sequential(self) -> SequentialConfig:
        """The mSPRT settings this config implies, for one comparison (no family correction)."""
        return self.sequential_for(1)

    def sequential_for(self, treatments: int) -> SequentialConfig:
        """The mSPRT settings with ``treatments`` arms sharing alpha (unless a family is set)."""
        family = self.sequential_family or max(int(treatments), 1)
        return SequentialConfig(
            alpha=self.alpha / family,
            tuning_n=self.sequential_tuning_n,
            mixture_variance=self.sequential_mixture_variance,
        )


# Array fields of FullResults that to_records() writes, in order; all have shape (K, M, S).
_RECORD_FIELDS = (
    "n_control", "n_treatment", "control_mean", "treatment_mean", "difference", "ci_low",
    "ci_high", "relative_lift", "relative_ci_low", "relative_ci_high", "relative_p_value",
    "statistic", "p_value", "p_holm", "p_bh", "reject_holm", "reject_bh", "chance_to_win",
    "expected_loss", "expected_loss_control", "credible_ci_low", "credible_ci_high",
    "credible_relative_ci_low", "credible_relative_ci_high", "sequential_mixture_variance",
    "sequential_p_value", "sequential_ci_low", "sequential_ci_high",
    "sequential_relative_ci_low", "sequential_relative_ci_high", "mde", "error", "note",
)
# The keys of to_records()' dicts in their order (the sample-ratio check's where it ran): a
# table of comparisons has these columns even when it has no rows.
RECORD_COLUMNS = ("control", "sequential_alpha", "treatment", "metric", "kind", "slice",
                  *_RECORD_FIELDS, "srm_p_value", "srm_mismatch")


@dataclass(frozen=True, eq=False)
class FullResults:
    """Arrays of shape (treatments, metrics, slices); ``error`` is None where the row is valid.

    ``srm_p_value`` and ``srm_mismatch`` (one per slice) are present when unit counts and weights
    were given to :func:`analyze`.
    """

    control_name: str
    treatment_names: tuple[str, ...]
    metric_names: tuple[str, ...]
    slice_names: tuple[str, ...]
    is_proportion: np.ndarray
    alpha: float
    n_control: np.ndarray
    n_treatment: np.ndarray
    control_mean: np.ndarray
    treatment_mean: np.ndarray
    difference: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    relative_lift: np.ndarray
    relative_ci_low: np.ndarray
    relative_ci_high: np.ndarray
    relative_p_value: np.ndarray
    statistic: np.ndarray
    p_value: np.ndarray
    p_holm: np.ndarray
    p_bh: np.ndarray
    reject_holm: np.ndarray
    reject_bh: np.ndarray
    chance_to_win: np.ndarray
    expected_loss: np.ndarray
    expected_loss_control: np.ndarray
    credible_ci_low: np.ndarray
    credible_ci_high: np.ndarray
    credible_relative_ci_low: np.ndarray
    credible_relative_ci_high: np.ndarray
    sequential_alpha: float
    sequential_mixture_variance: np.ndarray
    sequential_p_value: np.ndarray
    sequential_ci_low: np.ndarray
    sequential_ci_high: np.ndarray
    sequential_relative_ci_low: np.ndarray
    sequential_relative_ci_high: np.ndarray
    mde: np.ndarray
    error: np.ndarray
    note: np.ndarray
    srm_p_value: np.ndarray | None = None
    srm_mismatch: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """(treatments, metrics, slices)."""
        k, m, s = self.p_value.shape
        return k, m, s

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per comparison (NaN becomes None)."""
        k, m, s = self.shape
        treatment = np.repeat(np.asarray(self.treatment_names, dtype=object), m * s)
        metric = np.tile(np.repeat(np.asarray(self.metric_names, dtype=object), s), k)
        slice_ = np.tile(np.asarray(self.slice_names, dtype=object), k * m)
        kind = np.tile(
            np.repeat(np.where(self.is_proportion, "proportion", "mean").astype(object), s), k
        )
        columns: dict[str, list[Any]] = {
            "control": [self.control_name] * (k * m * s),
            "sequential_alpha": [self.sequential_alpha] * (k * m * s),
            "treatment": treatment.tolist(),
            "metric": metric.tolist(),
            "kind": kind.tolist(),
            "slice": slice_.tolist(),
        }
        for name in _RECORD_FIELDS:
            values = getattr(self, name).ravel().tolist()
            if name.startswith(("n_", "reject_")) or name in ("error", "note"):
                columns[name] = values
            else:
                columns[name] = [None if math.isnan(v) else v for v in values]
        if self.srm_p_value is not None and self.srm_mismatch is not None:
            srm_p = np.tile(self.srm_p_value, k * m).tolist()
            columns["srm_p_value"] = [None if math.isnan(v) else v for v in srm_p]
            columns["srm_mismatch"] = np.tile(self.srm_mismatch, k * m).tolist()
        names = list(columns)
        return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


# What the frequentist kernels (proportions and Welch) return for each comparison.
_COMPARISON_FIELDS = (
    "control_mean",
    "treatment_mean",
    "control_variance",
    "treatment_variance",
    "difference",
    "ci_low",
    "ci_high",
    "relative_lift",
    "relative_ci_low",
    "relative_ci_high",
    "relative_p_value",
    "statistic",
    "p_value",
)


def analyze(
    aggregates: ExperimentAggregates,
    config: AnalysisConfig | None = None,
    *,
    units: ArrayLike | None = None,
    weights: ArrayLike | None = None,
) -> FullResults:
    """Full results of an experiment from its aggregates.

    ``units`` (arms x slices, units assigned) and ``weights`` (one per arm) switch on the
    per-slice sample-ratio-mismatch check.
    """
    config = config if config is not None else AnalysisConfig()
    alpha = config.alpha
    arms, n_metrics, n_slices = aggregates.shape
    shape = (arms - 1, n_metrics, n_slices)

    def pair(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.broadcast_to(values[0], shape).ravel(), values[1:].ravel()

    n_c, n_t = pair(aggregates.n)
    sum_c, sum_t = pair(aggregates.sums)
    ss_c, ss_t = pair(aggregates.sum_squares)
    k_c, k_t = pair(aggregates.shift)
    props = np.broadcast_to(aggregates.is_proportion[None, :, None], shape).ravel()
    pi, mi = np.flatnonzero(props), np.flatnonzero(~props)

    size = n_c.size
    out = {
        name: np.full(size, np.nan)
        for name in (
            *_COMPARISON_FIELDS,
            "chance_to_win",
            "expected_loss",
            "expected_loss_control",
            "credible_ci_low",
            "credible_ci_high",
            "credible_relative_ci_low",
            "credible_relative_ci_high",
            "mde",
        )
    }
    reason = np.zeros(size, dtype=np.int8)
    note = np.full(size, None, dtype=object)

    for index, arrays in (
        (pi, proportion_arrays(n_c[pi], sum_c[pi], n_t[pi], sum_t[pi], alpha)),
        (mi, welch_arrays(n_c[mi], sum_c[mi], ss_c[mi], n_t[mi], sum_t[mi], ss_t[mi], alpha,
                          k_c[mi], k_t[mi])),
    ):
        for name in _COMPARISON_FIELDS:
            out[name][index] = getattr(arrays, name)
        reason[index] = arrays.reason
        note[index] = arrays.note
    gauss = gaussian_arrays(out["control_mean"], out["control_variance"], n_c,
                            out["treatment_mean"], out["treatment_variance"], n_t, alpha)
    for name in ("ci_low", "ci_high", "relative_ci_low", "relative_ci_high"):
        out["credible_" + name][:] = getattr(gauss, name)
    out["credible_ci_low"][pi] = out["credible_ci_high"][pi] = np.nan  # Beta posteriors below
    # A proportion's relative credible interval is the normal approximation's: where the counts
    # are too few for it (the frequentist side gives no relative interval, and says so), none.
    withheld = pi[np.isnan(out["relative_ci_low"][pi])]
    out["credible_relative_ci_low"][withheld] = np.nan
    out["credible_relative_ci_high"][withheld] = np.nan

    if pi.size:
        bayes = beta_binomial_arrays(
            n_c[pi], sum_c[pi], n_t[pi], sum_t[pi], config.prior, config.quadrature_nodes
        )
        out["chance_to_win"][pi] = bayes.chance_to_win
        out["expected_loss"][pi] = bayes.expected_loss
        out["expected_loss_control"][pi] = bayes.expected_loss_control
        out["credible_ci_low"][pi], out["credible_ci_high"][pi] = beta_credible_interval(
            n_c[pi], sum_c[pi], n_t[pi], sum_t[pi], config.prior, alpha)
        up = mde_proportion_arrays(out["control_mean"][pi], n_c[pi], n_t[pi], alpha,
                                   config.power)[0]
        # A rate at (or near) 100 % can only fall: the downward MDE, by symmetry minus the
        # upward one of 1 - p.
        down = -mde_proportion_arrays(1.0 - out["control_mean"][pi], n_c[pi], n_t[pi], alpha,
                                      config.power)[0]
        out["mde"][pi] = np.where(np.isnan(up), down, up)
    if mi.size:
        out["chance_to_win"][mi] = gauss.chance_to_win[mi]
        out["expected_loss"][mi] = gauss.expected_loss[mi]
        out["expected_loss_control"][mi] = gauss.expected_loss_control[mi]
        out["mde"][mi] = mde_mean_arrays(
            out["control_variance"][mi],
            n_c[mi],
            out["treatment_variance"][mi],
            n_t[mi],
            alpha,
            config.power,
        )
    valid = reason == 0
    out["mde"][~valid] = np.nan
    for name in ("chance_to_win", "expected_loss", "expected_loss_control", "credible_ci_low",
                 "credible_ci_high", "credible_relative_ci_low", "credible_relative_ci_high"):
        out[name][~valid] = np.nan
    undetectable = valid & np.isnan(out["mde"])
    note[undetectable & (note == None)] = "no effect is detectable at these sample sizes"  # noqa: E711

    seq_config = config.sequential_for(arms - 1)
    seq = arm_sequential(out, n_c, sum_c, n_t, sum_t, pi, valid, alpha, seq_config)
    # One family per slice (its treatments x metrics): slice ``all`` keeps its adjusted p-values
    # however many slice strings the traffic carries.
    adjusted_holm = holm(out["p_value"].reshape(shape), alpha, family_axis=2)
    adjusted_bh = benjamini_hochberg(out["p_value"].reshape(shape), alpha, family_axis=2)

    srm_p = srm_flag = None
    if units is not None and weights is not None:
        counts = np.asarray(units, dtype=np.float64)
        checks.counts("units", counts)
        if counts.shape != (arms, n_slices):
            raise ValueError(f"units must have shape (arms, slices) = {(arms, n_slices)}")
        _, srm_p = srm_arrays(counts.T, weights)
        srm_flag = np.nan_to_num(srm_p, nan=1.0) < config.srm_threshold

    def shaped(values: np.ndarray) -> np.ndarray:
        array = np.asarray(values).reshape(shape)
        array.flags.writeable = False
        return array

    return FullResults(
        control_name=aggregates.arm_names[0],
        treatment_names=aggregates.arm_names[1:],
        metric_names=aggregates.metric_names,
        slice_names=aggregates.slice_names,
        is_proportion=aggregates.is_proportion,
        alpha=alpha,
        n_control=shaped(n_c.astype(np.int64)),
        n_treatment=shaped(n_t.astype(np.int64)),
        control_mean=shaped(out["control_mean"]),
        treatment_mean=shaped(out["treatment_mean"]),
        difference=shaped(out["difference"]),
        ci_low=shaped(out["ci_low"]),
        ci_high=shaped(out["ci_high"]),
        relative_lift=shaped(out["relative_lift"]),
        relative_ci_low=shaped(out["relative_ci_low"]),
        relative_ci_high=shaped(out["relative_ci_high"]),
        relative_p_value=shaped(out["relative_p_value"]),
        statistic=shaped(out["statistic"]),
        p_value=shaped(out["p_value"]),
        p_holm=shaped(adjusted_holm.p_adjusted),
        p_bh=shaped(adjusted_bh.p_adjusted),
        reject_holm=shaped(adjusted_holm.reject),
        reject_bh=shaped(adjusted_bh.reject),
        chance_to_win=shaped(out["chance_to_win"]),
        expected_loss=shaped(out["expected_loss"]),
        expected_loss_control=shaped(out["expected_loss_control"]),
        credible_ci_low=shaped(out["credible_ci_low"]),
        credible_ci_high=shaped(out["credible_ci_high"]),
        credible_relative_ci_low=shaped(out["credible_relative_ci_low"]),
        credible_relative_ci_high=shaped(out["credible_relative_ci_high"]),
        sequential_alpha=seq_config.alpha,
        sequential_mixture_variance=shaped(seq.mixture_variance),
        sequential_p_value=shaped(seq.p_value),
        sequential_ci_low=shaped(seq.ci_low),
        sequential_ci_high=shaped(seq.ci_high),
        sequential_relative_ci_low=shaped(seq.relative_ci_low),
        sequential_relative_ci_high=shaped(seq.relative_ci_high),
        mde=shaped(out["mde"]),
        error=shaped(messages(reason)),
        note=shaped(note),
        srm_p_value=srm_p,
        srm_mismatch=srm_flag,
    )

