"""The always-valid figures of every treatment arm, as the decision uses them.

Three things on top of the plain mSPRT of :mod:`~evaluation.stats.sequential`:

* **Family-wise error over the arms.** The decision ships or stops any of K treatment arms at
  any look, so each arm's always-valid interval is at ``alpha / K`` (Bonferroni). Each arm's
  test keeps ``P(ever rejects) <= alpha / K`` under no effect whatever the looks, so the union
  over arms stays below ``alpha`` for any dependence between them (they share the control). The
  p-values are adjusted to match, ``min(1, K p)``, so ``p <= alpha`` exactly when 0 is excluded.
  Without it an A/A test with 10 arms shipped or stopped some arm in 14 % of simulations.
* **Proportions.** Their variances use Agresti-Caffo rates, never zero at 0 % or 100 %, and
  never below the pooled one (:mod:`~evaluation.stats.proportion_variances`); their intervals
  are clipped to [-1, 1].
* **Means.** The difference's variance is never below the pooled (equal-variance) t-test's
  (:func:`~evaluation.stats.proportion_variances.null_floor`): a small arm's own sample
  variance, often 0 or far too low, would otherwise carry it; then it is inflated as a Student
  t's (:func:`~evaluation.stats.sequential.t_calibrated`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluation.stats.proportion_variances import null_floor, proportion_variances
from evaluation.stats.sequential import (
    SequentialConfig,
    msprt_arrays,
    msprt_relative_arrays,
)


@dataclass(frozen=True, eq=False)
class ArmSequential:
    """Always-valid figures per comparison, already corrected for the family of arms."""

    p_value: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    relative_ci_low: np.ndarray
    relative_ci_high: np.ndarray
    mixture_variance: np.ndarray


def arm_sequential(
    out: dict[str, np.ndarray], n_c: np.ndarray, sum_c: np.ndarray, n_t: np.ndarray,
    sum_t: np.ndarray, proportion_rows: np.ndarray, valid: np.ndarray, alpha: float,
    config: SequentialConfig,
) -> ArmSequential:
    """mSPRT figures at ``config.alpha`` (``alpha / K``), p-values scaled back to ``alpha``.

    ``out`` holds the fixed-horizon kernels' means, variances and differences (flat arrays);
    rows not ``valid`` (an empty arm, no variance at all) are NaN.
    """
    pi = proportion_rows
    family = alpha / config.alpha
    var_c, var_t = out["control_variance"].copy(), out["treatment_variance"].copy()
    var_c[pi], var_t[pi] = proportion_variances(sum_c[pi], n_c[pi], sum_t[pi], n_t[pi])
    estimated = np.ones(n_c.shape, dtype=bool)  # a mean's variance is its sample's
    estimated[pi] = False
    var_c[estimated], var_t[estimated] = null_floor(n_c[estimated], var_c[estimated],
                                                    n_t[estimated], var_t[estimated])
    seq = msprt_arrays(out["difference"], var_c, n_c, var_t, n_t, config, estimated)
    rel = msprt_relative_arrays(np.where(valid, out["control_mean"], 1.0), var_c, n_c,
                                out["treatment_mean"], var_t, n_t, config, estimated)
    ci_low, ci_high = seq.ci_low.copy(), seq.ci_high.copy()
    ci_low[pi], ci_high[pi] = np.maximum(ci_low[pi], -1.0), np.minimum(ci_high[pi], 1.0)
    p_value = np.minimum(1.0, seq.p_value * family)
    tau2 = seq.mixture_variance.copy()
    for array in (p_value, ci_low, ci_high, tau2):
        array[~valid] = np.nan
    rel_low, rel_high = rel.ci_low.copy(), rel.ci_high.copy()
    for array in (rel_low, rel_high):
        array[~valid | (out["control_mean"] == 0)] = np.nan
    return ArmSequential(p_value, ci_low, ci_high, rel_low, rel_high, tau2)
