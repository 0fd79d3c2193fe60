"""Online metrics of a ``label`` candidate: the confusion counts and the shift of its predicted
classes against its offline test's labels.

**Confusion counts.** Rows are the predicted class, columns the true class. A prediction with a
known truth (a correction, or a relabel no correction covered) counts at (answer, truth), from
the ``confusion`` aggregate rows. A served prediction nobody corrected counts as right, on the
diagonal: the assumption behind the results' ``accuracy_bound`` and the divergence report's
estimated label counts (customers correct what is wrong). A truth the same as its answer by the
rule exact match used (:mod:`core.same_answer`) is on the diagonal: whole values for a ``label``
candidate, LaTeX tokens (spacing ignored) for an undeclared one the worker counted untyped, so
its table and its ``exact_match`` agree. So ``accuracy`` here is
``trace / predictions`` under that assumption, the bound itself where every truth falls in the
table (a correction that confirms the answer is on the diagonal in both). A shadow's answers
reach nobody, so nothing is assumed for them: only its predictions with a truth are counted.

**Prediction shift.** The online shares of the predicted classes against the offline label
shares (``label_shares`` of the candidate's offline results, with the offline test's ``n``):
Pearson's chi-square test of homogeneity of the 2 x K table of counts (scipy
``chi2_contingency(correction=False)``; offline counts are ``share x n``), the population
stability index, and per class the difference of shares with Newcombe's hybrid score interval
(offline shares as counts of ``n``) and
the cell's adjusted standardized residual (Haberman 1973) with its two-sided normal p-value,
Holm-adjusted across the classes. A class is ``shifted`` when the whole table is (p < alpha and
PSI >= 0.1, on enough online counts for the chi-square approximation:
:func:`evaluation.share_tests.too_few`, else ``note`` says why not) and its own adjusted p-value
is below alpha. Where units sent several answers and their class counts are given, the test
is over units instead (:mod:`evaluation.clustered_shares`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from core.same_answer import same_output
from evaluation import aggregation as agg
from evaluation.clustered_shares import TEST, clustered_shift, untestable
from evaluation.online import Cell
from evaluation.share_tests import PSI_SHIFT, psi, too_few, too_few_units
from evaluation.stats import holm
from evaluation.stats.small_samples import newcombe_interval
from evaluation.unit_class_counts import UnitClassCounts

ASSUMPTION = ("uncorrected served predictions count as right (on the diagonal), as in "
              "accuracy_bound = 1 - (known_wrong + errors) / predictions; failed predictions "
              "are left out here")
SHADOW_ASSUMPTION = "a shadow's answers reach nobody: only predictions with a truth are counted"


def pairs(cell: Cell, compared_as: str | None = "label"
          ) -> tuple[dict[tuple[str, str], float], dict[str, float]]:
    """(answer, truth) -> predictions, from the cell's ``confusion`` rows, a truth the same as
    its answer by `compared_as`'s rule taken as the answer; and answer -> predictions whose
    truth the rows could not hold (a pair too long for the column)."""
    out: dict[tuple[str, str], float] = {}
    unplaced: dict[str, float] = {}
    for label, v in cell.labels(agg.CONFUSION).items():
        answer, truth = json.loads(label)
        if truth is None:
            unplaced[answer] = unplaced.get(answer, 0.0) + float(v[0])
        else:
            if same_output(answer, truth, compared_as):
                truth = answer
            out[(answer, truth)] = out.get((answer, truth), 0.0) + float(v[0])
    return out, unplaced


def class_order(declared: Sequence[str], *seen: Any) -> list[str]:
    """The declared classes in their order, then any other class seen, sorted."""
    extra = {str(c) for names in seen for c in names} - set(declared)
    return [*declared, *sorted(extra)]


def confusion(cell: Cell, declared: Sequence[str] = (), *, shadow: bool = False,
              compared_as: str | None = "label") -> dict[str, Any]:
    """The confusion counts of one variant x slice, JSON-ready (see the module docstring);
    `compared_as` is the type exact match compared the answers by
    (:attr:`~evaluation.candidate_facts.CandidateFacts.compared_as`)."""
    known, unplaced = pairs(cell, compared_as)
    outputs = {lb: float(v[0]) for lb, v in cell.labels(agg.OUTPUT).items()}
    classes = class_order(declared, outputs, [a for a, _ in known], [t for _, t in known])
    index = {c: i for i, c in enumerate(classes)}
    corrected = np.zeros((len(classes), len(classes)))
    for (answer, truth), n in known.items():
        corrected[index[answer], index[truth]] += n
    # An answer with a truth is not uncorrected, placed in the table or not.
    with_truth = corrected.sum(axis=1) + np.array([unplaced.get(c, 0.0) for c in classes])
    answered = np.array([outputs.get(c, 0.0) for c in classes])
    uncorrected = np.zeros(len(classes)) if shadow else np.maximum(answered - with_truth, 0.0)
    table = corrected + np.diag(uncorrected)
    total = float(table.sum())
    truths = float(corrected.sum())
    return {
        "classes": classes,
        "counts": table.astype(int).tolist(),
        "with_truth": corrected.astype(int).tolist(),
        "uncorrected": None if shadow else dict(zip(classes, uncorrected.astype(int).tolist(),
                                                    strict=True)),
        "uncorrected_counted_as": None if shadow else "right",
        "assumption": SHADOW_ASSUMPTION if shadow else ASSUMPTION,
        "predictions": int(answered.sum()),
        "truths": int(truths),
        # Truths the table cannot place: of failed predictions, or pairs too long to keep.
        "truths_outside_table": max(int(cell.get(agg.CORRECTED)[0] - truths), 0),
        "accuracy": None if shadow or not total else float(np.trace(table) / total),
        "accuracy_with_truth": float(np.trace(corrected) / truths) if truths else None,
    }


def prediction_shift(online: Mapping[str, float], offline_shares: Mapping[str, float],
                     offline_n: float | None, declared: Sequence[str] = (),
                     alpha: float = 0.05, units: UnitClassCounts | None = None,
                     ) -> dict[str, Any] | None:
    """Online predicted-class counts against offline label shares (see the module docstring);
    None without offline shares or online predictions. `units`: each unit's counts of the same
    answers, where some unit gave several; the test is then over units
    (:mod:`evaluation.clustered_shares`)."""
    total = float(sum(online.values()))
    off_sum = float(sum(offline_shares.values()))
    if not offline_shares or total <= 0 or off_sum <= 0:
        return None
    classes = class_order(declared, offline_shares, online)
    on = np.array([float(online.get(c, 0.0)) for c in classes])
    off = np.array([float(offline_shares.get(c, 0.0)) for c in classes]) / off_sum
    q = on / total
    index = psi(off, on)
    out: dict[str, Any] = {
        "test": "pearson chi-square of homogeneity (offline counts = share x n)",
        "online_n": int(total), "offline_n": int(offline_n) if offline_n else None,
        "chi_square": None, "dof": None, "p_value": None, "psi": index, "shifted": False,
        "error": None, "note": None, "analysis_unit": "prediction", "online_units": None,
    }
    per_class = [{"label": c, "online_count": int(on[i]), "online_share": float(q[i]),
                  "offline_share": float(off[i]), "difference": float(q[i] - off[i]),
                  "difference_ci": None, "residual": None, "p_value": None,
                  "p_value_holm": None, "shifted": False} for i, c in enumerate(classes)]
    out["classes"] = per_class
    if not offline_n or offline_n <= 0:
        out["error"] = "the offline results give no n, so the offline shares have no sample size"
        return out
    table = np.vstack([off * float(offline_n), on])
    keep = table.sum(axis=0) > 0
    if keep.sum() < 2:
        out["error"] = "fewer than two classes were seen offline or online"
        return out
    if units is not None:
        return _shift_over_units(out, off, float(offline_n), units.matrix(classes), alpha)
    res = stats.chi2_contingency(table[:, keep], correction=False)
    expected = np.zeros_like(table)
    expected[:, keep] = res.expected_freq
    grand = table.sum()
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    z = float(stats.norm.isf(alpha / 2))
    residual = np.full(len(classes), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.sqrt(expected[1] * (1 - rows[1] / grand) * (1 - cols / grand))
        residual[keep] = ((table[1] - expected[1]) / scale)[keep]
    p_each = np.where(np.isfinite(residual), 2 * stats.norm.sf(np.abs(residual)), np.nan)
    adjusted = holm(p_each, alpha).p_adjusted
    note = too_few(total, int(keep.sum()))
    shifted = bool(res.pvalue < alpha and index >= PSI_SHIFT and note is None)
    # Newcombe's score interval: a Wald one had no width for a class no online answer gave,
    # and covered a 2 % class's true difference 8 times in 100 at 5 online answers.
    lows, highs = newcombe_interval(off * float(offline_n), np.full(len(classes),
                                                                    float(offline_n)),
                                    on, np.full(len(classes), total), z)
    for i, row in enumerate(per_class):
        row["difference_ci"] = [float(lows[i]), float(highs[i])]
        if math.isfinite(residual[i]):
            row.update(residual=float(residual[i]), p_value=float(p_each[i]),
                       p_value_holm=float(adjusted[i]),
                       shifted=bool(shifted and adjusted[i] < alpha))
    out.update(chi_square=float(res.statistic), dof=int(res.dof), p_value=float(res.pvalue),
               shifted=shifted, note=note)
    return out


def label_block(cell: Cell, declared: Sequence[str], offline: Mapping[str, Any] | None,
                alpha: float, *, shadow: bool = False, compared_as: str | None = "label",
                units: UnitClassCounts | None = None) -> dict[str, Any]:
    """Confusion counts and prediction shift of one variant x slice; ``offline`` is the offline
    row of that slice (``n``, ``label_shares``, ``output_shares``), or None; `units`: each
    unit's counts of the answers, where some unit gave several (both shifts then over units).

    ``answer_shift`` holds the online answers against the offline *answers* (``output_shares``,
    when the offline test kept them) by the same test: where ``prediction_shift`` mixes a change
    of inputs with the model's own errors, this one moves only when the inputs changed."""
    outputs = {lb: float(v[0]) for lb, v in cell.labels(agg.OUTPUT).items()}
    offline = offline or {}
    # The offline answers' shares are of the examples the candidate answered, not of all n.
    answered = offline.get("n")
    if answered is not None and offline.get("failed"):
        answered = answered - offline["failed"]
    return {"confusion": confusion(cell, declared, shadow=shadow, compared_as=compared_as),
            "prediction_shift": prediction_shift(outputs, offline.get("label_shares") or {},
                                                 offline.get("n"), declared, alpha, units),
            "answer_shift": prediction_shift(outputs, offline.get("output_shares") or {},
                                             answered, declared, alpha, units)}


def _shift_over_units(out: dict[str, Any], off: np.ndarray, offline_n: float,
                      units: np.ndarray, alpha: float) -> dict[str, Any]:
    """`out` filled by the Wald test over units; the rule for a shift as Pearson's, with the
    sparse-table rule applied to the units (a handful of units is no shift, however many
    answers each gave)."""
    k = units.shape[0]
    out.update(test=TEST, analysis_unit="unit", online_units=k)
    res = clustered_shift(off, offline_n, units)
    if res is None:
        out["error"] = "fewer than two units answered, so nothing can be tested over units"
        return out
    if math.isnan(res.p_value):
        out["error"] = untestable(k, res.units, res.dof + 1, "classes", "answered over")
        return out
    tested = np.isfinite(res.z)
    adjusted = holm(res.p_each, alpha).p_adjusted
    note = too_few_units(k, int(tested.sum()))
    shifted = bool(res.p_value < alpha and out["psi"] >= PSI_SHIFT and note is None)
    lows, highs = res.interval(alpha)
    for i, row in enumerate(out["classes"]):
        row["difference_ci"] = [float(lows[i]), float(highs[i])]
        if tested[i]:
            row.update(residual=float(res.z[i]), p_value=float(res.p_each[i]),
                       p_value_holm=float(adjusted[i]),
                       shifted=bool(shifted and adjusted[i] < alpha))
    out.update(chi_square=res.statistic, dof=res.dof, p_value=res.p_value, shifted=shifted,
               note=note)
    return out
