"""Experiment results from real aggregates, checked against scipy and statsmodels on the raw
values the events carried."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sqlalchemy import update
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize, proportions_ztest

from core.store.db import Database
from core.store.models import Experiment
from evaluation import sketch
from evaluation.results import experiment_results
from evaluation.stats.power import mde_relative
from evaluation.stats.sequential import optimal_mixture_ratio
from tests.evaluation.helpers import add_experiment, apply, correction, prediction


def _feed(db: Database, n_per_arm: tuple[int, int], rates: tuple[float, float],
          latency_scale: tuple[float, float], seed: int = 0) -> dict[str, Any]:
    """Predictions for both arms (two slices), corrections at the given rates; returns the raw
    values per arm."""
    rng = np.random.default_rng(seed)
    raw: dict[str, Any] = {}
    batch = []
    for arm, cand, n, rate, scale in zip(("control", "treatment"), ("cand-a", "cand-b"),
                                         n_per_arm, rates, latency_scale, strict=True):
        lat = np.round(rng.lognormal(np.log(scale), 0.4, n), 3)
        wrong = rng.random(n) < rate
        raw[arm] = {"latency": lat, "corrected": wrong}
        for i in range(n):
            pid = f"{arm}-{i}"
            batch.append(prediction(pid, arm=arm, candidate=cand, latency_ms=float(lat[i]),
                                    unit_id=f"{arm}-u{i}",
                                    slice_="printed/middle" if i % 2 else "handwritten/middle"))
            if wrong[i]:
                batch.append(correction(pid, "y"))
    for lo in range(0, len(batch), 1000):
        apply(db, batch[lo: lo + 1000])
    return raw


def _record(results: dict[str, Any], metric: str, slice_: str = "all") -> dict[str, Any]:
    return next(r for r in results["comparisons"]
                if r["metric"] == metric and r["slice"] == slice_ and r["treatment"] == "treatment")


def test_results_match_scipy_and_statsmodels_on_the_raw_values(db: Database) -> None:
    exp = add_experiment(db)
    raw = _feed(db, (1500, 1500), (0.20, 0.14), (12.0, 13.0))
    with db.session() as s:
        res = experiment_results(s, exp)
    c, t = raw["control"], raw["treatment"]
    # Correction rate: the two-proportion z-test (pooled) of statsmodels.
    rec = _record(res, "correction_rate")
    count = np.array([t["corrected"].sum(), c["corrected"].sum()])
    z, p = proportions_ztest(count, np.array([1500, 1500]))
    assert rec["statistic"] == pytest.approx(z, rel=1e-9)
    assert rec["p_value"] == pytest.approx(p, rel=1e-9)
    assert rec["difference"] == pytest.approx(t["corrected"].mean() - c["corrected"].mean())
    # Latency mean: Welch's t-test of scipy on the raw latencies.
    rec = _record(res, "latency_ms")
    welch = stats.ttest_ind(t["latency"], c["latency"], equal_var=False)
    assert rec["statistic"] == pytest.approx(welch.statistic, rel=1e-6)
    assert rec["p_value"] == pytest.approx(welch.pvalue, rel=1e-5)
    # Latency ranks: scipy's Mann-Whitney on the values rounded to their buckets.
    mw = next(x for x in res["latency"] if x["slice"] == "all" and x["treatment"] == "treatment")
    rep = sketch.LAYOUT.representatives
    rounded = [rep[sketch.LAYOUT.bucket_of(a["latency"])] for a in (t, c)]
    ref = stats.mannwhitneyu(*rounded, method="asymptotic")
    assert mw["u"] == pytest.approx(ref.statistic)
    assert mw["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    # SRM: 1500 vs 1500 units at 50/50 is no mismatch; chi-square of scipy.
    assert res["srm"]["p_value"] == pytest.approx(stats.chisquare([1500, 1500]).pvalue)
    assert res["trustworthy"] is True
    # Holm over every comparison (1 treatment x 6 metrics x 3 slices).
    assert len(res["comparisons"]) == 18
    m = res["metrics"]["control"]["all"]
    assert m["correction_rate"] == pytest.approx(c["corrected"].mean())
    assert m["latency_p50_ms"] == pytest.approx(np.quantile(c["latency"], 0.5),
                                                rel=0.01)


def test_clear_win_ships(db: Database) -> None:
    exp = add_experiment(db, guardrails={"p99_latency_ms": 500.0, "error_rate": 0.05})
    _feed(db, (2000, 2000), (0.30, 0.10), (10.0, 10.0), seed=3)
    with db.session() as s:
        res = experiment_results(s, exp)
    assert res["decision"]["action"] == "ship"
    assert res["decision"]["arm"] == "treatment"
    rate = _record(res, "correction_rate")
    assert rate["verdict"] == "better"
    # Read in the metric's direction (lower is better): the chance the treatment's rate is the
    # lower one, and its loss if chosen small; they read 0.0 and 0.2 before.
    assert rate["lower_is_better"] and rate["chance_to_win"] > 0.999
    assert rate["expected_loss"] < 1e-6 < rate["expected_loss_control"]


def test_guardrail_breach_stops(db: Database) -> None:
    exp = add_experiment(db, guardrails={"p99_latency_ms": 20.0})
    _feed(db, (1000, 1000), (0.30, 0.10), (10.0, 40.0), seed=4)
    with db.session() as s:
        decision = experiment_results(s, exp)["decision"]
    assert decision["action"] == "stop"
    assert "p99 latency" in decision["reasons"][0]


def test_little_data_keeps_running_with_sample_still_needed(db: Database) -> None:
    exp = add_experiment(db)
    _feed(db, (150, 150), (0.20, 0.19), (10.0, 10.0), seed=5)
    with db.session() as s:
        res = experiment_results(s, exp)
    assert res["decision"]["action"] == "keep_running"
    power = res["power"]["treatment"]
    assert power["still_needed"] > 1000
    # The power the 150 + 150 have against the target effect for the always-valid test the
    # decision uses: Phi(|delta| / sqrt(V) - z_b(V)) with the mSPRT boundary z_b.
    rec = next(r for r in res["comparisons"] if r["treatment"] == "treatment"
               and r["metric"] == res["experiment"]["primary_metric"] and r["slice"] == "all")
    base = rec["control_mean"]
    target = base * (1 - power["target_relative_effect"])
    v = base * (1 - base) / rec["n_control"] + target * (1 - target) / rec["n_treatment"]
    tau2, a = rec["sequential_mixture_variance"], rec["sequential_alpha"]
    z_b = math.sqrt((v + tau2) / tau2 * (2 * math.log(1 / a) + math.log((v + tau2) / v)))
    expected = stats.norm.cdf(abs(target - base) / math.sqrt(v) - z_b)
    assert power["power_at_target"] == pytest.approx(expected, rel=1e-9)
    # ... which is below the fixed-horizon power statsmodels gives at the same n.
    h = proportion_effectsize(target, base)
    assert power["power_at_target"] < NormalIndPower().power(
        abs(h), nobs1=rec["n_treatment"], ratio=rec["n_control"] / rec["n_treatment"], alpha=0.05)
    assert power["mde_relative"] > power["target_relative_effect"]  # hence still_needed > 0
    # The metric is lower-is-better: its MDE is the fall it can detect, given as a size.
    fall = mde_relative(base, base * (1 - base), rec["n_control"], None, rec["n_treatment"],
                        is_proportion=True, downward=True)
    assert power["mde_relative"] == pytest.approx(-fall.relative, rel=1e-12)
    assert "more predictions per arm" in res["decision"]["reasons"][0]
    # Stopped, it gathers no more: not "keep running" but not enough evidence.
    with db.session() as s:
        s.execute(update(Experiment).where(Experiment.id == exp).values(status="stopped"))
    with db.session() as s:
        stopped = experiment_results(s, exp)["decision"]
    assert stopped["action"] == "inconclusive" and "is stopped" in stopped["reasons"][0]
    assert "more predictions per arm" in stopped["reasons"][1]


def test_sample_ratio_mismatch_makes_results_untrustworthy(db: Database) -> None:
    exp = add_experiment(db)
    _feed(db, (1300, 1000), (0.30, 0.10), (10.0, 10.0), seed=6)
    with db.session() as s:
        res = experiment_results(s, exp)
    assert res["srm"]["p_value"] == pytest.approx(stats.chisquare([1300, 1000]).pvalue)
    assert res["srm"]["mismatch"] is True
    assert res["trustworthy"] is False
    assert res["decision"]["action"] == "stop"
    assert "sample ratio mismatch" in res["decision"]["reasons"][0]


def test_the_always_valid_test_is_tuned_for_the_expected_sample(db: Database) -> None:
    """The mixture variance is r times the difference's variance at the experiment's expected
    sample per arm (r solving r = 2 log(1/alpha) + log(1 + r)), so the interval is tightest
    near that sample: with 400 per arm, tuned for 400 it is narrower than tuned for 5,000
    (the default) or for 1,000,000."""
    exp = add_experiment(db)
    _feed(db, (400, 400), (0.20, 0.15), (10.0, 10.0), seed=9)
    widths = {}
    for expected in (None, 400, 1_000_000):
        with db.session() as s:
            s.execute(update(Experiment).where(Experiment.id == exp)
                      .values(expected_sample_per_arm=expected))
        with db.session() as s:
            rec = _record(experiment_results(s, exp), "correction_rate")
        # Per observation, p(1 - p) at the Agresti-Caffo rate (s + 1) / (n + 2) of each arm,
        # scaled up where the difference's variance would be below the pooled rate's.
        arms = [(mean * n, n) for mean, n in ((rec["control_mean"], rec["n_control"]),
                                              (rec["treatment_mean"], rec["n_treatment"]))]
        pooled = (sum(s for s, _ in arms) + 1) / (sum(n for _, n in arms) + 2)
        own = [(s + 1) / (n + 2) * (1 - (s + 1) / (n + 2)) for s, n in arms]
        scale = max(1.0, pooled * (1 - pooled) * sum(1 / n for _, n in arms)
                    / sum(v / n for v, (_, n) in zip(own, arms, strict=True)))
        per_obs = sum(own) * scale
        r = optimal_mixture_ratio(rec["sequential_alpha"])
        assert rec["sequential_mixture_variance"] == pytest.approx(
            r * per_obs / (expected or 5000), rel=1e-6)
        widths[expected] = rec["sequential_ci_high"] - rec["sequential_ci_low"]
    assert widths[400] < widths[None] < widths[1_000_000]
