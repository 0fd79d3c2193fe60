"""Per-slice sample-ratio checks: only slices large enough for the chi-square approximation are
tested, Holm-adjusted across them (statsmodels' multipletests "holm" on scipy's chisquare), and
a slice's mismatch is a warning in the decision, never an untrustworthy stop on its own."""

from __future__ import annotations

from typing import Any

import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from core.store.db import Database
from evaluation.results import experiment_results
from tests.evaluation.helpers import add_experiment, apply, prediction

THREE_ARMS = [{"name": "ctl", "candidate": "cand-ctl", "weight": 1.0, "control": True},
              {"name": "t1", "candidate": "cand-t1", "weight": 1.0, "control": False},
              {"name": "t2", "candidate": "cand-t2", "weight": 1.0, "control": False}]


def _results(db: Database, per_slice: dict[str, dict[str, int]],
             arms: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One unit per prediction: ``per_slice[slice][arm]`` units of that arm in that slice."""
    exp = add_experiment(db, arms=arms or THREE_ARMS)
    cand = {a["name"]: a["candidate"] for a in arms or THREE_ARMS}
    apply(db, [prediction(f"{s}-{arm}-{i}", experiment_id=exp, arm=arm, candidate=cand[arm],
                          slice_=s, unit_id=f"{s}-{arm}-u{i}")
               for s, counts in per_slice.items() for arm, n in counts.items()
               for i in range(n)])
    with db.session() as s:
        return experiment_results(s, exp)


def test_tiny_slices_do_not_stop_a_healthy_experiment(db: Database) -> None:
    # The exploratory pass: 7 units in one of three arms reads p = exp(-7) = 0.00091 < 0.001,
    # which the old code turned into "stop: untrustworthy" while the overall check was fine.
    res = _results(db, {"main": {"ctl": 100, "t1": 100, "t2": 100},
                        "tiny-1": {"ctl": 7}, "tiny-2": {"ctl": 7}})
    srm = res["srm"]
    assert stats.chisquare([7, 0, 0]).pvalue < srm["threshold"]  # what the old code flagged
    assert srm["p_value"] == pytest.approx(stats.chisquare([114, 100, 100]).pvalue, rel=1e-9)
    assert srm["mismatch"] is False and srm["flagged"] is False
    assert srm["mismatched_slices"] == [] and srm["slice_warning"] is None
    assert srm["slices_tested"] == 1 and srm["slices_too_small"] == 2
    assert srm["slice_p_values"]["tiny-1"] is None and srm["slice_p_adjusted"]["tiny-2"] is None
    assert res["trustworthy"] is True
    assert res["decision"]["action"] != "stop"
    assert not any("sample ratio" in r for r in res["decision"]["reasons"])


def test_a_real_mismatch_within_slices_is_a_holm_adjusted_warning(db: Database) -> None:
    two = [{"name": "ctl", "candidate": "cand-ctl", "weight": 0.5, "control": True},
           {"name": "t", "candidate": "cand-t", "weight": 0.5, "control": False}]
    per_slice = {"a": {"ctl": 150, "t": 50}, "b": {"ctl": 50, "t": 150},
                 "c": {"ctl": 104, "t": 96}, "d": {"ctl": 3}}
    res = _results(db, per_slice, two)
    srm = res["srm"]
    # The overall split (307 / 296) holds: trustworthy, no stop (the old code stopped)...
    assert srm["mismatch"] is False and srm["flagged"] is False and res["trustworthy"] is True
    decision = res["decision"]
    assert decision["action"] != "stop"
    # ... but the decision warns about the slices.
    warning = [r for r in decision["reasons"] if r.startswith("warning: sample ratio mismatch")]
    assert len(warning) == 1 and "a, b" in warning[0] and "3 tested slices" in warning[0]
    tested = ["a", "b", "c"]
    raw = [stats.chisquare([per_slice[s]["ctl"], per_slice[s].get("t", 0)]).pvalue
           for s in tested]
    holm = multipletests(raw, method="holm")[1]
    for s, p, adjusted in zip(tested, raw, holm, strict=True):
        assert srm["slice_p_values"][s] == pytest.approx(p, rel=1e-9)
        assert srm["slice_p_adjusted"][s] == pytest.approx(adjusted, rel=1e-9)
    assert srm["slice_p_values"]["d"] is None
    assert srm["slices_tested"] == 3 and srm["slices_too_small"] == 1
    assert srm["mismatched_slices"] == ["a", "b"]


def test_holm_across_slices_keeps_one_slice_below_threshold_from_alarming(
        db: Database) -> None:
    # A slice at raw p just under 0.001 among 10 tested slices: Holm multiplies it by 10.
    per_slice = {f"s{i}": {"ctl": 30, "t1": 30, "t2": 30} for i in range(9)}
    per_slice["odd"] = {"ctl": 47, "t1": 20, "t2": 23}
    raw_odd = stats.chisquare([47, 20, 23]).pvalue
    assert raw_odd < 0.001
    srm = _results(db, per_slice)["srm"]
    assert srm["flagged"] is False  # old code: flagged on the raw p-value
    assert srm["slice_p_values"]["odd"] == pytest.approx(raw_odd, rel=1e-9)
    raw = [stats.chisquare(list(per_slice[s].values())).pvalue for s in sorted(per_slice)]
    holm = dict(zip(sorted(per_slice), multipletests(raw, method="holm")[1], strict=True))
    assert srm["slice_p_adjusted"]["odd"] == pytest.approx(holm["odd"], rel=1e-9)
    assert srm["slice_p_adjusted"]["odd"] > srm["threshold"]
    assert srm["mismatched_slices"] == [] and srm["flagged"] is False
