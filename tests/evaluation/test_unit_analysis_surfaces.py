"""The per-unit analysis where people read it: the dashboard's arm intervals, the divergence
report's online accuracy against offline, and the weekly report's week."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from scipy import stats as scipy_stats

from core.store.db import Database
from evaluation.online import ALL
from evaluation.results import experiment_results
from evaluation.unit_moments import RECOUNTED
from tests.evaluation.helpers import T0, add_experiment, apply, as_stored_before_0023, prediction
from tests.evaluation.unit_data import close, cluster_variance, clustered


def test_the_dashboards_arm_intervals_are_the_results_per_unit_ones(db: Database) -> None:
    from dashboards import data
    exp = add_experiment(db)
    batch, rows = clustered(seed=9, units=15)
    apply(db, batch)
    with db.session() as s:
        report = experiment_results(s, exp)
    for slice_ in (ALL, "b"):
        shown = {(r["variant"], r["metric"]): r for r in data.arm_intervals(db, exp, slice_)}
        for arm in ("control", "treatment"):
            row = shown[(arm, "correction_rate")]
            assert [row["low"], row["high"]] == pytest.approx(
                report["metrics"][arm][slice_]["correction_rate_ci"], rel=1e-12)
            assert row["n"] == len({r[0] for r in rows[arm] if slice_ == ALL or r[1] == slice_})


def test_the_dashboards_intervals_stay_within_each_metric_s_values(db: Database) -> None:
    """A confidence's interval ran past 1, a latency's below 0 ms: clipped to the metric's
    values, on the per-prediction and the per-unit routes alike."""
    from dashboards import data
    exp = add_experiment(db)
    confidences, latencies = (0.99, 1.0, 0.5), (0.1, 0.2, 90.0)
    batch = [prediction(f"p{i}", experiment_id=exp, confidence=c, latency_ms=ms)
             for i, (c, ms) in enumerate(zip(confidences, latencies, strict=True))]
    batch += [prediction(f"q{i}", experiment_id=exp, arm="treatment", candidate="cand-b",
                         unit_id=f"u{i % 3}", confidence=c, latency_ms=ms)
              for i, (c, ms) in enumerate(zip(confidences * 2, latencies * 2, strict=True))]
    apply(db, batch)
    shown = {(r["variant"], r["metric"]): r for r in data.arm_intervals(db, exp, ALL)}
    for arm in ("control", "treatment"):
        assert shown[(arm, "confidence")]["high"] == 1.0
        assert shown[(arm, "latency_ms")]["low"] == 0.0


def test_the_divergence_holds_online_accuracy_per_unit_against_offline(db: Database) -> None:
    from evaluation.divergence import divergence_report
    from tests.evaluation.helpers import add_candidate
    exp = add_experiment(db)
    offline = {"overall": {"n": 4000, "exact_match": 0.7}}
    add_candidate(db, "cand-a", offline)
    batch, rows = clustered(seed=21, units=40)
    apply(db, batch)
    with db.session() as s:
        report = divergence_report(s, exp, tolerance=0.02)
        windowed = divergence_report(s, exp, since=T0 - timedelta(hours=1))
    row = next(r for r in report["slices"] if r["candidate"] == "cand-a" and r["slice"] == ALL)
    units = np.array([r[0] for r in rows["control"]])
    hits = np.array([float(not (r[2] and not r[3])) for r in rows["control"]])
    variance = cluster_variance(hits, units)
    assert row["online"]["analysis_unit"] == "unit"
    assert row["online"]["accuracy_bound"] == pytest.approx(hits.mean())
    z = (hits.mean() - 0.7 + 0.02) / np.sqrt(variance + 0.7 * 0.3 / 4000)
    assert row["z"] == pytest.approx(z, rel=1e-9)
    # Wald's p with the delta method's variance, no smaller than the binomial tail at 0.68.
    tail = scipy_stats.binom.cdf(hits.sum(), len(hits), 0.68)
    assert row["p_value"] == pytest.approx(max(scipy_stats.norm.cdf(z), tail), rel=1e-9)
    k = len(np.unique(units))
    half = scipy_stats.t.ppf(0.975, k - 1) * np.sqrt(variance)
    assert row["online"]["accuracy_ci"] == pytest.approx(
        [max(hits.mean() - half, 0), min(hits.mean() + half, 1)], rel=1e-9)
    # A window that holds every hour gives the same.
    again = next(r for r in windowed["slices"] if r["candidate"] == "cand-a"
                 and r["slice"] == ALL)
    assert again["online"] == row["online"] and again["p_value"] == row["p_value"]


def test_the_weekly_report_tests_per_unit_in_its_week_or_says_why_not(db: Database) -> None:
    from dashboards.report.render import render_html
    from evaluation.weekly import weekly_data
    exp = add_experiment(db)
    batch, _ = clustered(seed=5, units=10, experiment_id=exp)
    apply(db, batch)
    with db.session() as s:  # the whole experiment lies in the week: per unit
        inside = weekly_data(s, "2026-W47")["experiments"][0]
    assert {c["analysis_unit"] for c in inside["comparisons"]
            if c["metric"] == "correction_rate"} == {"unit"}
    assert inside["analysis_unit_note"] is None
    apply(db, [prediction("next-week", experiment_id=exp, unit_id="control-0",
                          at=T0 + timedelta(days=7))])
    with db.session() as s:  # now the experiment runs on into the next week: its units are
        week = weekly_data(s, "2026-W47")["experiments"][0]  # recounted in the week's hours
    assert week["comparisons"] == [close(c) for c in inside["comparisons"]]
    assert week["analysis_unit_note"] is None
    apply(db, [prediction("failed", experiment_id=exp, unit_id="control-1", error="timeout")])
    as_stored_before_0023(db, "failed")
    with db.session() as s:  # a failure the stored rows cannot show: that metric says why
        failing = weekly_data(s, "2026-W47")
    said = failing["experiments"][0]["analysis_unit_note"]
    assert "count predictions as independent" in said and RECOUNTED in said
    assert "Note: units sent" in render_html(failing)
