"""The built-in metrics are tested per unit where units send several requests: the delta
method's variance over each unit's sums (checked against statsmodels' cluster-robust variance
and scipy's Welch test), verified labels moving a unit's sums, an A/A calibration, and the
per-prediction fallback said out loud (a time window, predictions stored before the unit sums)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from scipy import stats as scipy_stats
from sqlalchemy import delete

from core.store.db import Database
from core.store.outcome_models import UnitSums
from evaluation.online import ALL, Variant
from evaluation.results import experiment_results
from evaluation.stats import AnalysisConfig, ExperimentAggregates, analyze
from evaluation.unit_moments import (
    RECOUNTED,
    STALE,
    WINDOWED,
    Moments,
    load_moments,
    moments_of,
    unit_analysis,
    unit_rows,
)
from tests.evaluation.helpers import (
    T0,
    add_experiment,
    apply,
    as_stored_before_0023,
    correction,
    prediction,
)
from tests.evaluation.test_truth_rules import _label
from tests.evaluation.unit_data import ARMS, cluster_variance, clustered, comparison


def test_a_rate_of_units_that_send_many_requests_is_tested_per_unit(db: Database) -> None:
    exp = add_experiment(db)
    batch, rows = clustered()
    apply(db, batch)
    with db.session() as s:
        report = experiment_results(s, exp)
    assert report["analysis_unit"]["per_unit"] == sorted([
        "correction_rate", "confidence", "error_rate", "exact_match", "latency_ms",
        "token_edit_distance"])
    assert report["analysis_unit_note"] is None
    for slice_ in (ALL, "a"):
        rec = comparison(report, "correction_rate", slice_)
        assert rec["analysis_unit"] == "unit" and rec["kind"] == "mean"
        per_arm = {}
        for arm in ("control", "treatment"):
            kept = [r for r in rows[arm] if slice_ == ALL or r[1] == slice_]
            units = np.array([r[0] for r in kept])
            values = np.array([float(r[2]) for r in kept])
            per_arm[arm] = (values.mean(), cluster_variance(values, units),
                            len(np.unique(units)))
        (mean_c, var_c, k_c), (mean_t, var_t, k_t) = per_arm["control"], per_arm["treatment"]
        assert (rec["n_control"], rec["n_treatment"]) == (k_c, k_t)
        assert rec["control_mean"] == pytest.approx(mean_c, rel=1e-12)
        standard_error = rec["difference"] / rec["statistic"]
        assert standard_error ** 2 == pytest.approx(var_c + var_t, rel=1e-9)
        welch = scipy_stats.ttest_ind_from_stats(mean_t, np.sqrt(var_t * k_t), k_t,
                                                 mean_c, np.sqrt(var_c * k_c), k_c,
                                                 equal_var=False)
        assert rec["p_value"] == pytest.approx(welch.pvalue, rel=1e-6)
        # Counting predictions as independent would have claimed a far narrower interval.
        n_c, n_t = (sum(1 for r in rows[a] if slice_ == ALL or r[1] == slice_)
                    for a in ("control", "treatment"))
        naive = mean_c * (1 - mean_c) / n_c + mean_t * (1 - mean_t) / n_t
        assert var_c + var_t > 1.2 * naive
    # The arm's own interval is the per-unit one: Student's t on K - 1 degrees of freedom.
    mean_c, var_c, k_c = per_arm["control"]  # slice "a" last
    half = scipy_stats.t.ppf(0.975, k_c - 1) * np.sqrt(var_c)
    assert report["metrics"]["control"]["a"]["correction_rate_ci"] == pytest.approx(
        [max(mean_c - half, 0), min(mean_c + half, 1)], rel=1e-9)


def test_one_request_per_unit_keeps_the_exact_proportion_tests(db: Database) -> None:
    exp = add_experiment(db)
    apply(db, [prediction(f"{arm}-{u}", arm=arm, candidate=cand, unit_id=f"{arm}-{u}")
               for arm, cand in ARMS for u in range(6)])
    with db.session() as s:
        report = experiment_results(s, exp)
    assert report["analysis_unit"] == {"per_unit": [], "per_prediction": {}}
    assert report["analysis_unit_note"] is None
    rec = comparison(report, "correction_rate")
    assert rec["kind"] == "proportion" and rec["analysis_unit"] == "prediction"


def test_a_window_or_sums_from_before_the_upgrade_count_predictions_and_say_so(
        db: Database) -> None:
    exp = add_experiment(db)
    batch, _ = clustered(seed=3, units=6)
    later = T0 + timedelta(hours=2)
    apply(db, [*batch, prediction("late", unit_id="control-0", at=later)])
    with db.session() as s:
        whole = experiment_results(s, exp, since=T0 - timedelta(hours=1))  # holds every hour
        everything = experiment_results(s, exp)
        windowed = experiment_results(s, exp, until=later - timedelta(hours=1))
    assert whole["analysis_unit"]["per_unit"] == everything["analysis_unit"]["per_unit"] != []
    assert comparison(whole, "correction_rate") == comparison(everything, "correction_rate")
    assert windowed["analysis_unit"]["per_unit"] == []
    assert windowed["analysis_unit"]["per_prediction"]["correction_rate"] == WINDOWED
    assert "count predictions as independent" in windowed["analysis_unit_note"]
    assert comparison(windowed, "correction_rate")["analysis_unit"] == "prediction"
    with db.session() as s:  # as if the predictions were stored before unit_sums existed
        s.execute(delete(UnitSums).where(UnitSums.slice == "a"))
    with db.session() as s:
        old = experiment_results(s, exp)
    assert old["analysis_unit"]["per_unit"] == []
    assert STALE in old["analysis_unit_note"]
    assert comparison(old, "correction_rate")["kind"] == "proportion"


def test_a_recounted_window_is_tested_per_unit_on_its_own_predictions(db: Database) -> None:
    """Given `recounts` (the weekly report's), a window that leaves hours out recounts its units
    from its stored predictions: its tests are those of an experiment that had only the
    window's predictions, and a second analysis of the window reuses the recount."""
    exp = add_experiment(db)
    alone = add_experiment(db, name="alone", scope="alone")
    batch, _ = clustered(seed=3, units=6, experiment_id=exp)
    only, _ = clustered(seed=3, units=6, experiment_id=alone, prefix="alone-")
    later = T0 + timedelta(hours=2)
    late = [prediction(f"late-{k}", unit_id=f"control-{k % 2}", at=later, experiment_id=exp)
            for k in range(4)]
    apply(db, [*batch, *late, correction("late-0", "y^{2}")])
    apply(db, only)
    recounts: dict = {}
    with db.session() as s:
        windowed = experiment_results(s, exp, until=later - timedelta(hours=1),
                                      recounts=recounts)
        again = experiment_results(s, exp, until=later - timedelta(hours=1), recounts=recounts)
        reference = experiment_results(s, alone)
        everything = experiment_results(s, exp)
    assert [key[:2] for key in recounts] == [(exp, None)]  # one recount, of this window
    assert again == windowed
    assert windowed["analysis_unit"] == reference["analysis_unit"]
    assert windowed["analysis_unit"]["per_unit"] != [] and windowed["analysis_unit_note"] is None
    for metric in windowed["analysis_unit"]["per_unit"]:
        got, want = comparison(windowed, metric), comparison(reference, metric)
        assert got["analysis_unit"] == "unit", metric
        for field in ("n_control", "n_treatment", "control_mean", "difference", "p_value",
                      "sequential_p_value"):
            expected = None if want[field] is None else pytest.approx(want[field], rel=1e-9)
            assert got[field] == expected, (metric, field)
    assert comparison(everything, "correction_rate")["control_mean"] != pytest.approx(
        comparison(windowed, "correction_rate")["control_mean"])  # the late hour is left out


def test_a_recount_that_cannot_see_every_failure_keeps_that_metric_per_prediction(
        db: Database) -> None:
    """A stored prediction says whether it failed; one stored before schema 0023 does not (the
    served ledger's watched rows alone mark a failure then): where the recount's errors fall
    short of the aggregates', the error rate stays per prediction and the results say why;
    the other metrics go per unit."""
    exp = add_experiment(db)
    batch, _ = clustered(seed=3, units=6)
    later = T0 + timedelta(hours=2)
    failed = prediction("failed", unit_id="control-1", error="timeout")
    apply(db, [*batch, failed, prediction("late", unit_id="control-0", at=later)])
    window = {"until": later - timedelta(hours=1)}
    with db.session() as s:
        told = experiment_results(s, exp, **window, recounts={})["analysis_unit"]
    assert told["per_prediction"] == {} and "error_rate" in told["per_unit"]
    as_stored_before_0023(db, "failed")
    with db.session() as s:
        unit = experiment_results(s, exp, **window, recounts={})["analysis_unit"]
    assert unit["per_prediction"] == {"error_rate": RECOUNTED}
    assert "correction_rate" in unit["per_unit"]


def test_moments_held_in_memory_are_those_the_store_groups(db: Database) -> None:
    exp = add_experiment(db)
    apply(db, clustered(seed=8, units=12)[0])
    with db.session() as s:
        grouped, rows = load_moments(s, exp), unit_rows(s, exp)
    in_memory = moments_of(rows)
    assert in_memory.keys() >= {k for k, m in grouped.items() if m.k}
    for key, moments in grouped.items():
        assert in_memory.get(key, moments.__class__(*(0.0,) * 6)) == pytest.approx(
            moments, rel=1e-12), key


def test_verified_labels_move_their_units_sums(db: Database) -> None:
    exp = add_experiment(db)
    batch = [prediction(f"c{k}", unit_id=f"u{k // 3}", slice_=f"s{k % 2}", output="setosa")
             for k in range(9)]
    batch += [correction("c0", "setosa"), correction("c1", "virginica")]
    apply(db, batch)
    _label(db, "c1", "setosa")      # the correction said wrong; the label says right
    _label(db, "c4", "virginica")   # no correction; the label says wrong
    _label(db, "c5", "setosa")      # no correction; right
    relabelled: list = []
    from evaluation.online import load_cells
    with db.session() as s:
        cells = load_cells(s, exp, relabelled=relabelled)
        analysis = unit_analysis(s, exp, cells, relabelled)
    control = Variant("control", "cand-a", False)
    # exact matches by unit: u0 = {c0: 1, c1: 1}, u1 = {c4: 0, c5: 1}
    expected = Moments.of(2, 2) + Moments.of(2, 1)
    assert analysis.stats(control, ALL, "exact_match") == expected
    # slice s0 holds c0 and c4 (units u0 and u1), s1 holds c1 and c5
    assert analysis.stats(control, "s0", "exact_match") == Moments.of(1, 1) + Moments.of(1, 0)
    assert analysis.stats(control, "s1", "exact_match") == Moments.of(1, 1) + Moments.of(1, 1)
    # The customers' correction count stays theirs: u0 corrected twice, nobody else.
    assert analysis.stats(control, ALL, "correction_rate") == (
        Moments.of(3, 2) + Moments.of(3, 0) + Moments.of(3, 0))
    assert "exact_match" in analysis.per_unit


def _aa_p_values(per_unit: bool, runs: int = 300) -> np.ndarray:
    """p-values of A/A experiments whose units (40 per arm, 1-20 requests each) differ in how
    often they correct, through the results' analysis, per unit or per prediction."""
    rng = np.random.default_rng(11)
    p = []
    for _ in range(runs):
        arms = []
        for _arm in range(2):
            sizes = rng.integers(1, 21, size=40)
            rates = rng.beta(0.5, 1.5, size=40)
            arms.append((sizes.astype(float), rng.binomial(sizes, rates).astype(float)))
        if per_unit:
            stats = [sum((Moments.of(x, y) for x, y in zip(*a, strict=True)),
                         start=Moments.of(0, 0)).stats() for a in arms]
            n, shift, sums, squares = (np.array([[[s[i]]] for s in stats]) for i in range(4))
            aggregates = ExperimentAggregates(n, sums, squares, [False], shift=shift)
        else:
            n = np.array([[[a[0].sum()]] for a in arms])
            sums = np.array([[[a[1].sum()]] for a in arms])
            aggregates = ExperimentAggregates(n, sums, sums, [True])
        p.append(float(analyze(aggregates, AnalysisConfig()).p_value.ravel()[0]))
    return np.array(p)


def test_per_unit_tests_hold_their_false_positive_rate_where_per_prediction_ones_do_not(
        ) -> None:
    assert 0.02 <= (_aa_p_values(per_unit=True) < 0.05).mean() <= 0.09
    assert (_aa_p_values(per_unit=False) < 0.05).mean() > 0.2


def test_a_number_candidates_errors_are_tested_per_unit_with_their_intervals(
        db: Database) -> None:
    from tests.evaluation.test_number_metrics import number_correction, number_prediction
    exp = add_experiment(db)
    rng = np.random.default_rng(5)
    batch, fixes, errors = [], [], {"control": [], "treatment": []}
    for arm in ("control", "treatment"):
        for u in range(12):
            bias = rng.normal(0, 2)  # each unit's inputs are hard or easy alike
            for k in range(int(rng.integers(2, 6))):
                pid, truth = f"{arm[0]}{u}-{k}", float(rng.normal(10, 1))
                answer = truth + bias + float(rng.normal(0, 0.2))
                event = number_prediction(pid, answer, arm)
                event["unit_id"] = f"{arm}-{u}"
                batch.append(event)
                fixes.append(number_correction(pid, truth))
                errors[arm].append((f"{arm}-{u}", abs(answer - truth)))
    apply(db, batch)
    apply(db, fixes)
    with db.session() as s:
        report = experiment_results(s, exp)
    assert {"absolute_error", "squared_error"} <= set(report["analysis_unit"]["per_unit"])
    units = np.array([u for u, _ in errors["control"]])
    values = np.array([e for _, e in errors["control"]])
    variance, k = cluster_variance(values, units), len(np.unique(units))
    half = scipy_stats.t.ppf(0.975, k - 1) * np.sqrt(variance)
    control = report["metrics"]["control"]["all"]
    assert control["mae"] == pytest.approx(values.mean())
    assert control["mae_interval"] == pytest.approx([max(values.mean() - half, 0),
                                                     values.mean() + half], rel=1e-9)
    rec = comparison(report, "absolute_error")
    assert rec["analysis_unit"] == "unit" and rec["n_control"] == k


def test_units_spread_over_batches_and_a_replay_give_the_moments_of_their_requests(
        db: Database) -> None:
    """Each unit's requests arrive in several batches (one applied twice: counted once); the
    moments read equal those of each unit's requests summed here, per slice and overall."""
    from evaluation.unit_moments import _group_moments, load_moments
    from evaluation.unit_sums import contributions
    exp = add_experiment(db)
    batch, rows = clustered(seed=13, units=25)
    chunks = [batch[i::7] for i in range(7)]  # every unit's events spread over the batches
    for i, chunk in enumerate([*chunks, chunks[2]]):  # the third one replayed
        apply(db, chunk)
        if i == 0:  # read between batches: a later read sees the later batches
            with db.session() as s:
                first = load_moments(s, exp)
    sums: dict = {}
    for arm, cand in ARMS:
        for unit, slice_, corrected, exact in rows[arm]:
            for where in (slice_, ALL):
                row = sums.setdefault((Variant(arm, cand, False), where, unit), {
                    c: 0.0 for c in ("predictions", "errors", "corrected", "truths",
                                     "exact_sum", "edit_sum", "confidence_n",
                                     "confidence_sum", "latency_n", "latency_sum",
                                     "number_n", "abs_sum", "sq_sum")})
                row["predictions"] += 1
                row["confidence_n"] += 1
                row["confidence_sum"] += 0.9
                row["latency_n"] += 1
                row["latency_sum"] += 10.0
                row["corrected"] += corrected
                row["truths"] += corrected
                row["exact_sum"] += exact
    expected: dict = {}
    for (variant, where, _), row in sums.items():
        for metric, m in contributions(row).items():
            expected[(variant, where, metric)] = expected.get((variant, where, metric),
                                                              Moments.of(0, 0)) + m
    with db.session() as s:
        kept = load_moments(s, exp)
        assert load_moments(s, exp) == kept  # unchanged rows: read again alike
    assert first != kept
    # Every metric, those of a count no unit has (a number's errors) too: read as no units,
    # though their sums are left out of the grouping.
    assert {k[2] for k in expected} == {k[2] for k in kept}
    for (variant, where, metric), moments in expected.items():
        if metric != "token_edit_distance":  # edit distances are not summed here
            assert kept[(variant, where, metric)] == pytest.approx(moments, rel=1e-12), \
                (variant, where, metric)
    assert kept[(Variant("control", "cand-a", False), ALL, "absolute_error")] == Moments.of(0, 0)
    with db.session() as s:  # grouping every count's sums gives the same
        every = _group_moments(s, exp)
    assert every.keys() == kept.keys()
    for key, moments in every.items():
        assert kept[key] == pytest.approx(moments, rel=1e-12), key
