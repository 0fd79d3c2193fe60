"""Where online results diverge from what a candidate's offline test promised: the Python API
behind ``GET /v1/experiments/{id}/divergence``.

For every candidate version of an experiment's arms and every slice (rows carry ``candidate``
and ``version``: two arms may run two versions of one name, and each version is held against its
own offline results; arms running the same version are pooled; shadows are left out, online
accuracy being read from corrections of served answers):

* **Accuracy gap.** Offline ``exact_match`` beside the online accuracy bound
  ``1 - (known_wrong + errors) / predictions`` (answers whose correction or verified label
  differs are wrong, so are failed predictions, every other one counts as right) with its
  Wilson interval. Flagged when online is significantly worse than offline by more than
  ``tolerance``: the one-sided score test of
  ``H0: online - offline >= -tolerance`` (Farrington-Manning; statsmodels
  ``test_proportions_2indep(..., value=-tolerance, method="score", alternative="smaller")``),
  both samples counted, its p no smaller than the exact binomial tail of the online count at
  the null's edge (a few predictions, all wrong, do not make a finding). Where some unit sent
  several requests, the online variance and interval are the delta method's over units and the
  test is Wald's with them (:mod:`evaluation.unit_moments`; ``online.analysis_unit`` says
  which).
* **Traffic-mix shift** (:mod:`evaluation.traffic_mix`). Slice shares offline vs online: chi-square
  test of homogeneity on the two count vectors and the population stability index ``PSI = sum
  (q - p) ln(q / p)`` over shares smoothed by ``1e-4``, the offline shares over every slice of
  the offline mix (those with no online traffic included: ``offline_only``). The gap is split
  (Kitagawa decomposition) into the part the mix explains, ``sum (w_on - w_off) a_off``, and the
  part within slices, ``sum w_on (a_on - a_off)``; the two add up to the gap exactly, which tells
  a mix shift from a real drop. It needs both accuracies, so it runs over the slices with an
  offline accuracy and online traffic, and says which (``decomposition.basis``).
* **Prediction-distribution shift** (classification outputs). Online output shares against
  (a) the online label shares estimated from corrections (``output - corrected_output + truth``
  per class), tested per class with McNemar's test on the discordant counts, Holm-adjusted
  across the classes with a discordant answer (``p_value_holm``; ``online_classes_tested``
  says how many), as the finding names a class picked after looking at all; and (b) the offline
  label shares, ``offline_results["label_shares"] = {label: share}`` with the offline test's
  ``overall.n``, tested with the chi-square test of homogeneity and PSI, and per class by its
  difference of shares and Holm-adjusted residual
  (:func:`evaluation.label_metrics.prediction_shift`); where units sent several answers, (b)
  is tested over units (:mod:`evaluation.clustered_shares`, their class counts from
  :mod:`evaluation.unit_class_counts`), as are the traffic mix and (a), by Durkalski's
  McNemar test over units (:func:`evaluation.clustered_shares.clustered_mcnemar`).
* **Label candidates** (declared ``label``, or undeclared with offline label shares) also get
  their confusion counts per slice under ``label_metrics``
  (:func:`evaluation.label_metrics.confusion`).
* **Number candidates.** Online MAE and RMSE beside the offline ones, and the online MAE tested
  against ``(1 + tolerance) x`` the offline MAE (Welch, one-sided; ``mae_gap``, see
  :mod:`evaluation.number_metrics`).

The offline mix is ``offline_results["slices"][s]["n"]`` over the slices named in
``offline_results["mix_slices"]`` when given, else over the offline slices whose family (the
part before ``/``) appears online and the other families that fit beside them in the offline
test, so overlapping offline groupings (e.g. ``noise/*``) stay out (``left_out`` says why) while
a slice only the offline test has keeps its share (:mod:`evaluation.traffic_mix`).

Findings are ranked by the rules of :mod:`evaluation.findings`: by *severity*, the share of
online predictions a finding touches (the excess share of an over-predicted class, the accuracy
points lost, the accuracy points a mix shift explains), with a cause that explains at least half
of its candidate's accuracy gap (a prediction shift, or a mix shift the decomposition blames)
ranked ahead of the gap, whose sentence then names it.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Collection
from datetime import datetime
from typing import Any

import numpy as np
from scipy import special
from sqlalchemy.orm import Session
from statsmodels.stats.proportion import test_proportions_2indep

from core.errors import NotFound
from core.store.models import Experiment
from evaluation import aggregation as agg
from evaluation.candidate_facts import UNKNOWN, Ref, facts_by_version, variant_version
from evaluation.clustered_shares import clustered_mcnemar
from evaluation.findings import rank_findings
from evaluation.label_metrics import confusion, prediction_shift
from evaluation.number_metrics import mae_against_offline, number_errors
from evaluation.online import (
    ALL,
    Cell,
    estimated_label_counts,
    load_cells,
    metrics,
    window_read,
)
from evaluation.results import variants_of
from evaluation.share_tests import PSI_SHIFT, homogeneity, psi
from evaluation.slices import DEFAULT_MAX_SLICES, choose_slices
from evaluation.stage_blame import stage_attribution
from evaluation.stats import holm
from evaluation.stats.small_samples import wilson_interval
from evaluation.traffic_mix import traffic_mix
from evaluation.unit_class_counts import (
    Discordant,
    UnitClassCounts,
    relabelled_versions,
    too_many,
    unit_class_counts,
    unit_discordant_counts,
    unit_slice_counts,
)
from evaluation.unit_moments import Recounts, share_hull, t_interval, unit_analysis
from evaluation.unit_sums import ACCURACY_BOUND, NO_UNITS, Moments

__all__ = ["PSI_SHIFT", "candidate_divergence", "divergence_report", "homogeneity", "mcnemar",
           "non_inferiority", "psi"]


def non_inferiority(on_hits: float, on_n: float, off_rate: float, off_n: float,
                    tolerance: float, on_variance: float | None = None) -> tuple[float, float]:
    """z and one-sided p of ``H0: p_on - p_off >= -tolerance``.

    Binomial online counts: Farrington and Manning's score test (statsmodels'
    ``test_proportions_2indep(method="score")``), whose variance is taken under the null, so a
    rate at 0 or 1 does not make it vanish as Wald's does (one wrong answer against 90 %
    offline: Wald's p 5e-107). ``on_variance`` (units that send several requests: the delta
    method's variance of the online rate): Wald's z with it. Either way p is no smaller than
    the exact binomial tail of the online hits at the null's edge, ``P(X <= hits | n_on,
    p_off - tolerance)``: with a handful of predictions no normal approximation holds, and that
    tail is what the online count alone can show."""
    if on_n <= 0 or off_n <= 0:
        return math.nan, math.nan
    p_on = on_hits / on_n
    z = math.nan
    if on_variance is None:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            score = test_proportions_2indep(on_hits, on_n, off_rate * off_n, off_n,
                                            value=-tolerance, compare="diff", method="score",
                                            alternative="smaller")
        z = float(score.statistic)
    if math.isnan(z):  # clustered units, or a score the null's edge leaves undefined
        own = p_on * (1 - p_on) / on_n if on_variance is None else on_variance
        var = own + off_rate * (1 - off_rate) / off_n
        if var <= 0:
            return math.nan, math.nan
        z = (p_on - off_rate + tolerance) / math.sqrt(var)
    edge = min(max(off_rate - tolerance, 0.0), 1.0)
    whole = on_hits >= on_n - 1e-9  # every online answer right: the tail is 1 at any edge
    exact = 1.0 if whole else float(special.bdtr(math.floor(on_hits + 1e-9), round(on_n), edge))
    return z, max(float(special.ndtr(z)), exact)


def mcnemar(b: float, c: float) -> float:
    """McNemar's test with continuity correction on discordant counts b and c (p-value)."""
    if b + c == 0:
        return 1.0
    return float(special.chdtrc(1, (abs(b - c) - 1) ** 2 / (b + c)))


def _per_unit(moments: Moments | None, predictions: float,
              alpha: float) -> tuple[float, tuple[float, float] | None] | None:
    """The accuracy bound's delta-method variance and interval over units, where some unit
    sent several requests and the unit sums hold every prediction; None otherwise."""
    if moments is None or not moments.clustered or abs(moments.sx - predictions) > 0.5:
        return None
    n, _, _, squares = moments.stats()
    variance = squares / ((n - 1) * n) if n > 1 else math.nan
    return variance, t_interval(moments, alpha, 0.0, 1.0)


def _slice_rows(ref: Ref, offline: dict[str, Any], cells: dict[str, Cell], alpha: float,
                tolerance: float, units: dict[str, dict[str, Moments]] | None = None
                ) -> list[dict[str, Any]]:
    rows = []
    for slice_ in sorted(cells, key=lambda s: (s != ALL, s)):
        off = offline.get("overall" if slice_ == ALL else "slices", {})
        off = off if slice_ == ALL else off.get(slice_, {})
        m = metrics(cells[slice_], alpha)
        number = number_errors(cells[slice_], alpha)
        n_on = m["predictions"]
        # The bound's count: answers known wrong and failed predictions miss.
        hits = n_on - m["known_wrong"] - m["errors"]
        by_metric = (units or {}).get(slice_, {})
        per_unit = _per_unit(by_metric.get(ACCURACY_BOUND), n_on, alpha)
        mae_gap = mae_against_offline(cells[slice_], off, alpha, tolerance,
                                      by_metric.get(agg.ABSOLUTE_ERROR))
        if mae_gap is not None and mae_gap["analysis_unit"] == "unit":
            bounds = t_interval(by_metric[agg.ABSOLUTE_ERROR], alpha, 0.0, math.inf)
            if bounds is not None:
                number["mae_interval"] = list(bounds)
        low, high = wilson_interval(hits, n_on, alpha) if per_unit is None \
            else share_hull(per_unit[1], wilson_interval(hits, n_on, alpha)) \
            if per_unit[1] else (None, None)
        rate, n_off = off.get("exact_match"), off.get("n") or 0
        z, p = (non_inferiority(hits, n_on, rate, n_off, tolerance,
                                None if per_unit is None else per_unit[0])
                if rate is not None else (math.nan, math.nan))
        rows.append({
            "candidate": ref[0], "version": ref[1], "slice": slice_,
            "offline": {k: off.get(k) for k in ("n", "exact_match", "token_edit_distance",
                                                "mae", "rmse", "latency_p50_ms",
                                                "latency_p99_ms")},
            "online": {"n": n_on, "accuracy_bound": m["accuracy_bound"],
                       "failed": int(m["errors"]),  # no answer: counted wrong in the bound
                       "accuracy_ci": [low, high] if n_on else None,
                       "analysis_unit": "prediction" if per_unit is None else "unit",
                       "exact_match_with_truth": m["exact_match"],
                       # over predictions with a truth, mostly corrected wrong answers
                       "token_edit_distance_with_truth": m["token_edit_distance"],
                       "latency_p50_ms": m["latency_p50_ms"],
                       "latency_p99_ms": m["latency_p99_ms"],
                       **{k: number.get(k) for k in ("mae", "mae_interval", "rmse")}},
            "mae_gap": mae_gap,
            "gap": None if rate is None or not n_on else m["accuracy_bound"] - rate,
            "z": None if math.isnan(z) else z, "p_value": None if math.isnan(p) else p,
            "flagged": bool(p < alpha) if not math.isnan(p) else False,
        })
    return rows


def empty_slice_row() -> dict[str, Any]:
    """A slice row of no traffic and no offline results: every field a slice row has, for a
    table whose columns must not depend on the rows (evaluation.results_csv)."""
    return _slice_rows(("", None), {}, {ALL: Cell()}, 0.05, 0.0)[0]


def _holm_online(per_class: list[dict[str, Any]], alpha: float) -> int:
    """Holm-adjust the per-class McNemar p-values in place (``p_value_holm``) and return how
    many classes were tested: a finding names the class of largest excess, chosen after looking
    at all of them, so its raw p would be too small (17 % false findings over 10 classes at
    5 %). A class without discordant answers has no test (its p is 1 whatever happens), so it
    does not count; its adjusted p stays 1."""
    tested = [r for r in per_class if r["discordant"] > 0]
    adjusted = holm([r["p_value"] for r in tested], alpha).p_adjusted if tested else []
    for r in per_class:
        r["p_value_holm"] = 1.0
    for r, p in zip(tested, adjusted, strict=True):
        r["p_value_holm"] = float(p)
    return len(tested)


def _prediction_shift(ref: Ref, offline: dict[str, Any], cell: Cell, alpha: float,
                      units: UnitClassCounts | None = None,
                      discordant: Discordant | None = None) -> dict[str, Any] | None:
    outputs = {lb: v[0] for lb, v in cell.labels(agg.OUTPUT).items()}
    total = sum(outputs.values())
    if not total:
        return None
    labels = estimated_label_counts(cell)
    out: dict[str, Any] = {"candidate": ref[0], "version": ref[1], "output_shares": {
        k: v / total for k, v in sorted(outputs.items())}}
    classes = sorted(set(outputs) | set(labels))
    per_class = []
    for lb in classes:
        b = cell.get(agg.CORRECTED_OUTPUT, lb)[0]
        c = cell.get(agg.TRUTH, lb)[0]
        p = mcnemar(b, c) if discordant is None else clustered_mcnemar(
            *(side.matrix([lb])[:, 0] for side in discordant))
        per_class.append({"label": lb, "output_share": outputs.get(lb, 0) / total,
                          "label_share": labels.get(lb, 0) / total,
                          "excess": (outputs.get(lb, 0) - labels.get(lb, 0)) / total,
                          "p_value": p, "discordant": b + c})
    out["online_classes_tested"] = _holm_online(per_class, alpha)
    out["online_analysis_unit"] = "prediction" if discordant is None else "unit"
    out["online_labels"] = sorted(per_class, key=lambda r: -r["excess"])
    shift = prediction_shift(outputs, offline.get("label_shares") or {},
                             (offline.get("overall") or {}).get("n"), (), alpha, units)
    if shift is not None:
        top = max(shift["classes"], key=lambda r: (r["difference"], r["label"]))
        out["offline_labels"] = {
            **shift, "label_shares": {r["label"]: r["offline_share"] for r in shift["classes"]},
            "top_label": top["label"], "excess": top["difference"]}
    return out


def candidate_divergence(cand: str, offline: dict[str, Any], cells: dict[str, Cell],
                         alpha: float, tolerance: float, version: str | None = None,
                         shown: Collection[str] | None = None,
                         units: dict[str, dict[str, Moments]] | None = None,
                         unit_classes: UnitClassCounts | None = None,
                         unit_slices: UnitClassCounts | None = None,
                         discordant: Discordant | None = None,
                         ) -> tuple[list[dict[str, Any]], dict[str, Any] | None,
                                    dict[str, Any] | None]:
    """One candidate version's slice rows, traffic mix and prediction shift from its offline
    results and its online cells per slice (``all`` included); pure, so the findings' rules
    are tested on cells built in memory. Rows cover the `shown` slices only (all by default);
    the traffic mix always weighs every slice. ``units`` holds per-unit moments by slice and
    metric (the accuracy bound's, a number candidate's absolute error): where units send
    several requests, those intervals and tests are per unit, as the prediction shift's and
    the traffic mix's are given ``unit_classes`` and ``unit_slices``, and the online McNemar
    tests given ``discordant``."""
    ref = (cand, version)
    rows = _slice_rows(ref, offline, {s: c for s, c in cells.items()
                                      if shown is None or s in shown}, alpha, tolerance, units)
    return (rows, traffic_mix(ref, offline, cells, alpha, rows, unit_slices),
            _prediction_shift(ref, offline, cells[ALL], alpha, unit_classes, discordant))


def divergence_report(session: Session, experiment_id: int, *, alpha: float = 0.05,
                      tolerance: float = 0.02, since: datetime | None = None,
                      until: datetime | None = None,
                      max_slices: int = DEFAULT_MAX_SLICES,
                      recounts: Recounts | None = None) -> dict[str, Any]:
    """Offline-vs-online divergence of an experiment's candidate versions, with ranked
    findings; ``since``/``until`` keep the online side to a window of whole hours (the weekly
    report; per unit given ``recounts``, see :func:`evaluation.unit_moments.unit_analysis`).
    Slice rows cover ``all`` and at most `max_slices` slices, those the offline results name
    first (:mod:`evaluation.slices`)."""
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise NotFound(f"experiment {experiment_id} does not exist")
    relabelled: list[agg.Accumulator] = []
    all_cells = load_cells(session, experiment_id, since=since, until=until,
                           relabelled=relabelled)
    units = unit_analysis(session, experiment_id, all_cells, relabelled, since=since,
                          until=until, recounts=recounts)
    by_ref: dict[Ref, dict[str, Cell]] = defaultdict(lambda: defaultdict(Cell))
    bound: dict[Ref, dict[str, dict[str, Moments]]] = defaultdict(lambda: defaultdict(dict))
    for (variant, slice_), cell in all_cells.items():
        if not variant.shadow:  # accuracy online is read from corrections: served answers only
            version = variant_version(experiment, variant.arm, variant.candidate, False)
            by_ref[(variant.candidate, version)][slice_].merge(cell)
            pooled = bound[(variant.candidate, version)][slice_]  # arms of one version
            for metric in (ACCURACY_BOUND, agg.ABSOLUTE_ERROR):
                pooled[metric] = pooled.get(metric, NO_UNITS) + units.stats(variant, slice_,
                                                                            metric)
    refs: list[Ref] = list(dict.fromkeys(
        (v.candidate, variant_version(experiment, v.arm, v.candidate, v.shadow))
        for v in variants_of(experiment)[0]))
    refs += [r for r in sorted(by_ref, key=lambda r: (r[0], r[1] or "")) if r not in refs]
    facts = facts_by_version(session, refs)
    choice = choose_slices(all_cells, max_slices, first={
        s for f in facts.values() for s in (f.offline.get("slices") or {})})
    shown = set(choice.shown)
    answers = {ref: {lb: v[0] for lb, v in cells[ALL].labels(agg.OUTPUT).items()}
               for ref, cells in by_ref.items()
               if ALL in cells and facts.get(ref, UNKNOWN).offline.get("label_shares")
               and bound[ref][ALL].get(ACCURACY_BOUND, NO_UNITS).clustered}
    unit_classes = unit_class_counts(session, experiment, answers, since, until)
    unit_slices = unit_slice_counts(session, experiment, {
        ref: {s: c.get(agg.PREDICTIONS)[0] for s, c in cells.items() if s != ALL}
        for ref, cells in by_ref.items()
        if bound[ref][ALL].get(ACCURACY_BOUND, NO_UNITS).clustered}, since, until)
    relabels = relabelled_versions(experiment, relabelled)  # their stored truths replaced
    discordant = unit_discordant_counts(session, experiment, {
        ref: tuple({lb: v[0] for lb, v in cells[ALL].labels(metric).items()}
                   for metric in (agg.CORRECTED_OUTPUT, agg.TRUTH))
        for ref, cells in by_ref.items() if ALL in cells and ref not in relabels
        and bound[ref][ALL].get(ACCURACY_BOUND, NO_UNITS).clustered}, since, until)
    slices, mixes, shifts, labels = [], [], [], []
    for ref in refs:
        cells = by_ref.get(ref)
        if not cells:
            continue
        f = facts.get(ref, UNKNOWN)
        rows, mix, shift = candidate_divergence(ref[0], dict(f.offline), cells, alpha,
                                                tolerance, ref[1], shown, bound.get(ref),
                                                unit_classes.get(ref), unit_slices.get(ref),
                                                discordant.get(ref))
        note = too_many(sum(answers.get(ref, {}).values()))
        if note and shift and shift.get("offline_labels"):
            shift["offline_labels"]["unit_note"] = note
        note = too_many(cells[ALL].get(agg.PREDICTIONS)[0]) if ALL in cells else None
        if note and mix and bound[ref][ALL].get(ACCURACY_BOUND, NO_UNITS).clustered:
            mix["unit_note"] = note
        if f.is_label:
            labels.append({"candidate": ref[0], "version": ref[1], "confusion": {
                s: confusion(cells[s], f.kind.classes, compared_as=f.compared_as)
                for s in sorted(
                    (s for s in cells if s in shown), key=lambda s: (s != ALL, s))}})
        slices += rows
        if mix is not None:
            mixes.append(mix)
        if shift is not None:
            shifts.append(shift)
    return {"experiment_id": experiment_id, "alpha": alpha, "tolerance": tolerance,
            "window": window_read(since, until), "slice_choice": choice.as_dict(),
            "slices": slices, "traffic_mix": mixes, "prediction_shift": shifts,
            "label_metrics": labels, "findings": rank_findings(slices, mixes, shifts, alpha,
                                                                 tolerance)}


def divergence_with_stages(session: Session, experiment_id: int,
                           **options: Any) -> dict[str, Any]:
    """The divergence report with its stage attribution (for the slices the report shows), as
    the API and the CLI give it; `options` are :func:`divergence_report`'s."""
    report = divergence_report(session, experiment_id, **options)
    blame = stage_attribution(session, experiment_id, since=options.get("since"),
                              until=options.get("until"))
    shown = {ALL, *(r["slice"] for r in report["slices"])}
    blame["rows"] = [r for r in blame["rows"] if r["slice"] in shown]
    report["stage_attribution"] = blame
    return report
