"""Verified labels change the per-unit figures exactly as they change the aggregates, whatever
the predictions' slice (a request that names none is in slice ``all``, the slice the unit
analysis also sums every slice into): the metrics stay per unit once annotators label items, the
per-unit tests and intervals are those of the labels' truths (checked against statsmodels'
cluster-robust variance and scipy's Welch test and t quantiles), and a metric left per
prediction is never blamed on an old schema when the unit sums hold every prediction."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportion_confint

from core.store.db import Database
from evaluation.divergence import divergence_report
from evaluation.online import ALL, Variant, load_cells
from evaluation.results import experiment_results
from evaluation.unit_moments import STALE, UNMATCHED, Moments, analyse, unit_analysis
from evaluation.unit_sums import NO_UNITS
from tests.evaluation.helpers import add_candidate, add_experiment, apply, correction, prediction
from tests.evaluation.test_truth_rules import _label
from tests.evaluation.unit_data import ARMS, cluster_variance, comparison

CLASSES = ("setosa", "versicolor", "virginica")


def _labelled_traffic(db: Database, slices: tuple[str, ...], seed: int = 4,
                      units: int = 14) -> dict[str, list[tuple[str, str, str | None, str]]]:
    """Units sending 1-4 requests each; about half the answers corrected, and most corrected
    inputs (and a few uncorrected ones) labeled, the label often disagreeing with the
    correction. Per arm: each prediction's (unit, slice, truth, answer), the truth being the
    label where there is one, else the correction, else None."""
    rng = np.random.default_rng(seed)
    batch: list[dict[str, Any]] = []
    rows: dict[str, list[tuple[str, str, str | None, str]]] = {}
    labels: list[tuple[str, str]] = []
    for arm, cand in ARMS:
        rows[arm] = []
        for u in range(units):
            for k in range(int(rng.integers(1, 5))):
                pid, slice_ = f"{arm[0]}{u}-{k}", str(rng.choice(slices))
                answer = str(rng.choice(CLASSES))
                batch.append(prediction(pid, arm=arm, candidate=cand, unit_id=f"{arm}-{u}",
                                        slice_=slice_, output=answer))
                truth = None
                if rng.random() < 0.5:
                    truth = str(rng.choice(CLASSES))
                    batch.append(correction(pid, truth))
                if rng.random() < (0.7 if truth is not None else 0.15):
                    truth = str(rng.choice(CLASSES))
                    labels.append((pid, truth))
                rows[arm].append((f"{arm}-{u}", slice_, truth, answer))
    apply(db, batch)
    for pid, label in labels:
        _label(db, pid, label)
    return rows


def _exact(rows: dict[str, Any], arm: str, slice_: str) -> tuple[np.ndarray, np.ndarray]:
    """Per prediction with a truth (in `slice_`): its unit and whether its answer was right."""
    kept = [(u, float(t == a)) for u, s, t, a in rows[arm]
            if t is not None and (slice_ == ALL or s == slice_)]
    return np.array([u for u, _ in kept]), np.array([v for _, v in kept])


@pytest.mark.parametrize("slices", [("all",), ("lab", "field"), ("all", "lab")])
def test_labels_keep_the_metrics_per_unit_with_the_labels_truths(
        db: Database, slices: tuple[str, ...]) -> None:
    exp = add_experiment(db)
    rows = _labelled_traffic(db, slices)
    with db.session() as s:
        report = experiment_results(s, exp)
    said = report["analysis_unit"]
    assert said["per_prediction"] == {}
    assert {"exact_match", "token_edit_distance", "correction_rate"} <= set(said["per_unit"])
    assert report["analysis_unit_note"] is None
    for slice_ in {ALL, *slices}:
        rec = comparison(report, "exact_match", slice_)
        assert rec["analysis_unit"] == "unit"
        per_arm = {}
        for arm, _ in ARMS:
            units, values = _exact(rows, arm, slice_)
            per_arm[arm] = (values.mean(), cluster_variance(values, units),
                            len(np.unique(units)))
            figures = report["metrics"][arm][slice_]
            assert figures["exact_match"] == pytest.approx(values.mean(), rel=1e-12)
            assert figures["truth_known"] == len(values)
        (mean_c, var_c, k_c), (mean_t, var_t, k_t) = per_arm["control"], per_arm["treatment"]
        assert (rec["n_control"], rec["n_treatment"]) == (k_c, k_t)
        assert rec["control_mean"] == pytest.approx(mean_c, rel=1e-12)
        assert (rec["difference"] / rec["statistic"]) ** 2 == pytest.approx(var_c + var_t,
                                                                             rel=1e-9)
        welch = scipy_stats.ttest_ind_from_stats(mean_t, np.sqrt(var_t * k_t), k_t,
                                                 mean_c, np.sqrt(var_c * k_c), k_c,
                                                 equal_var=False)
        assert rec["p_value"] == pytest.approx(welch.pvalue, rel=1e-6)


def _bound_interval(units: np.ndarray, hits: np.ndarray) -> tuple[float, float, float]:
    """The accuracy bound over predictions (hit: not known wrong, not failed) and its per-unit
    t-interval, recomputed: the ratio of per-unit sums, the delta method's variance (as
    statsmodels' cluster-robust variance of the mean), Student's t on K - 1 df."""
    k = len(np.unique(units))
    mean = float(hits.mean())
    half = scipy_stats.t.ppf(0.975, k - 1) * np.sqrt(cluster_variance(hits, units))
    return mean, max(mean - half, 0.0), min(mean + half, 1.0)


@pytest.mark.parametrize("slices", [("all",), ("lab", "field")])
def test_the_divergence_interval_is_centred_on_the_bound_it_describes(
        db: Database, slices: tuple[str, ...]) -> None:
    exp = add_experiment(db)
    for _, cand in ARMS:
        add_candidate(db, cand, {"overall": {"n": 400, "exact_match": 0.8}})
    rows = _labelled_traffic(db, slices, seed=9, units=20)
    with db.session() as s:
        report = divergence_report(s, exp)
    online = {(r["candidate"], r["slice"]): r["online"] for r in report["slices"]}
    for arm, cand in ARMS:
        for slice_ in {ALL, *slices}:
            got = online[(cand, slice_)]
            kept = [(u, float(t is None or t == a)) for u, s, t, a in rows[arm]
                    if slice_ == ALL or s == slice_]
            units, hits = np.array([u for u, _ in kept]), np.array([h for _, h in kept])
            mean, low, high = _bound_interval(units, hits)
            # Never narrower than Wilson's interval over the predictions.
            w_low, w_high = proportion_confint(hits.sum(), hits.size, method="wilson")
            low, high = min(low, w_low), max(high, w_high)
            assert got["analysis_unit"] == "unit"
            assert got["accuracy_bound"] == pytest.approx(mean, rel=1e-12)
            assert got["accuracy_ci"] == pytest.approx([low, high], rel=1e-9)
            assert low <= got["accuracy_bound"] <= high


def test_a_share_no_unit_moved_has_an_interval_of_some_width(db: Database) -> None:
    """Five units of ten requests, no correction: no variance over units, so the delta
    method's interval was [0, 0]; it is at least Wilson's over the 50 predictions."""
    exp = add_experiment(db)
    apply(db, [prediction(f"p{k}", experiment_id=exp, unit_id=f"u{k // 10}")
               for k in range(50)] + [prediction(f"q{k}", experiment_id=exp, arm="treatment",
                                                 candidate="cand-b", unit_id=f"v{k // 10}")
                                      for k in range(50)])
    with db.session() as s:
        res = experiment_results(s, exp)
    assert "correction_rate" in res["analysis_unit"]["per_unit"]
    want = proportion_confint(0, 50, method="wilson")
    assert res["metrics"]["control"][ALL]["correction_rate_ci"] == pytest.approx(
        [0.0, want[1]], abs=1e-12)


def test_labels_move_the_units_of_slice_all_once(db: Database) -> None:
    exp = add_experiment(db)
    batch = [prediction(f"c{k}", unit_id=f"u{k // 3}", slice_=ALL, output="setosa")
             for k in range(6)]
    batch += [correction("c0", "virginica"), correction("c1", "virginica")]
    apply(db, batch)
    _label(db, "c0", "setosa")      # the correction said wrong; the label says right
    _label(db, "c3", "virginica")   # no correction; the label says wrong
    relabelled: list = []
    with db.session() as s:
        cells = load_cells(s, exp, relabelled=relabelled)
        analysis = unit_analysis(s, exp, cells, relabelled)
    control = Variant("control", "cand-a", False)
    # u0 = {c0: right, c1: wrong}, u1 = {c3: wrong}
    assert analysis.stats(control, ALL, "exact_match") == Moments.of(2, 1) + Moments.of(1, 0)
    assert analysis.fallback == {}


def test_a_metric_whose_sums_differ_though_every_prediction_is_held_is_not_blamed_on_the_schema(
        ) -> None:
    v = Variant("control", "cand-a", False)
    held = Moments.of(3, 1) + Moments.of(2, 0)
    moments = {(v, ALL, "error_rate"): held, (v, ALL, "correction_rate"): held,
               (v, ALL, "exact_match"): Moments.of(1, 1)}
    totals = {(v, ALL, "error_rate"): (5.0, 1.0), (v, ALL, "correction_rate"): (5.0, 1.0),
              (v, ALL, "exact_match"): (2.0, 1.0)}
    analysis = analyse(moments, totals)
    assert analysis.fallback == {"exact_match": UNMATCHED}
    assert "schema" not in UNMATCHED and "backfill" not in UNMATCHED
    missing = {**moments, (v, ALL, "error_rate"): NO_UNITS, (v, ALL, "correction_rate"): NO_UNITS}
    assert analyse(missing, totals).fallback["exact_match"] == STALE
