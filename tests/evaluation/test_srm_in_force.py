"""The sample-ratio check compares units with the allocation in force when they were assigned:
a healthy canary or a guardrail-paused arm is no mismatch, a real one within a period still is;
p-values against scipy's chi-square."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from scipy import stats
from sqlalchemy import update

from core.store.db import Database
from core.store.models import Experiment
from evaluation.results import experiment_results
from serving.assignment import allocate, reallocate
from serving.experiments import effective_weights
from tests.evaluation.helpers import T0, add_experiment, apply, prediction

HOUR = timedelta(hours=1)
CHANGE = T0 + timedelta(minutes=20)  # 10:35: the split changes mid-hour; from 11:00 it holds


def _units(db: Database, counts: dict[str, int], at: Any, tag: str) -> None:
    apply(db, [prediction(f"{tag}-{arm}-{i}", arm=arm, candidate=f"cand-{arm}",
                          unit_id=f"{tag}-{arm}-u{i}", at=at)
               for arm, n in counts.items() for i in range(n)])


def _set(db: Database, exp: int, **values: Any) -> None:
    with db.session() as s:
        s.execute(update(Experiment).where(Experiment.id == exp).values(**values))


def _canary(db: Database, before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
    """Arms 1/1, canary [0.1, 0.5] advanced at CHANGE (its step_started_at, as serving keeps
    it); `before` units in the first hour at 0.1, `after` from the next whole hour at 0.5."""
    exp = add_experiment(db, arms=[
        {"name": "ctl", "candidate": "cand-ctl", "weight": 1.0, "control": True},
        {"name": "t", "candidate": "cand-t", "weight": 1.0, "control": False}])
    canary = {"treatment": "t", "steps": [0.1, 0.5], "step": 0, "advance_after_n": 50}
    with db.session() as s:
        row = s.get(Experiment, exp)
        first = allocate(effective_weights({"arms": row.arms, "canary": canary}))
        canary = {**canary, "step": 1, "step_started_at": CHANGE.isoformat()}
        now = reallocate(first, effective_weights({"arms": row.arms, "canary": canary}))
        row.canary, row.allocation = canary, {"table": now.to_json()}
    _units(db, before, T0, "a")
    _units(db, after, T0 + HOUR, "b")
    with db.session() as s:
        return experiment_results(s, exp)


def test_a_healthy_canary_is_no_mismatch(db: Database) -> None:
    srm = _canary(db, {"ctl": 450, "t": 50}, {"ctl": 104, "t": 96})["srm"]
    assert srm["since"].startswith((T0 + HOUR).strftime("%Y-%m-%dT%H:00"))
    assert srm["weights"] == {"ctl": pytest.approx(0.5), "t": pytest.approx(0.5)}
    assert srm["units"] == {"ctl": 104, "t": 96}
    assert srm["p_value"] == pytest.approx(stats.chisquare([104, 96]).pvalue, rel=1e-9)
    assert srm["flagged"] is False


def test_a_mismatch_within_the_canary_step_is_still_flagged(db: Database) -> None:
    res = _canary(db, {"ctl": 450, "t": 50}, {"ctl": 130, "t": 70})
    srm = res["srm"]
    assert srm["p_value"] == pytest.approx(stats.chisquare([130, 70]).pvalue, rel=1e-9)
    assert srm["mismatch"] is True and srm["flagged"] is True
    assert res["trustworthy"] is False


def _paused(db: Database, after: dict[str, int], *, since: bool = True) -> dict[str, Any]:
    """Arms 1/1/1; 't2' paused by a guardrail at CHANGE (weight 0 from then on)."""
    exp = add_experiment(db, arms=[
        {"name": "ctl", "candidate": "cand-ctl", "weight": 1.0, "control": True},
        {"name": "t1", "candidate": "cand-t1", "weight": 1.0, "control": False},
        {"name": "t2", "candidate": "cand-t2", "weight": 1.0, "control": False}])
    with db.session() as s:
        row = s.get(Experiment, exp)
        first = allocate(effective_weights(row))
        row.arms = [{**a, "paused": "error_rate 0.3 > 0.05"} if a["name"] == "t2" else a
                    for a in row.arms]
        doc = {"table": reallocate(first, effective_weights(row)).to_json()}
        row.allocation = {**doc, "since": CHANGE.isoformat()} if since else doc
    _units(db, {"ctl": 100, "t1": 100, "t2": 100}, T0, "a")
    _units(db, after, T0 + HOUR, "b")
    with db.session() as s:
        return experiment_results(s, exp)


def test_a_guardrail_paused_arm_is_no_mismatch(db: Database) -> None:
    srm = _paused(db, {"ctl": 203, "t1": 97})["srm"]
    assert srm["since_inferred"] is False
    assert srm["weights"] == {"ctl": pytest.approx(2 / 3), "t1": pytest.approx(1 / 3), "t2": 0.0}
    assert srm["units"] == {"ctl": 203, "t1": 97, "t2": 0}
    want = stats.chisquare([203, 97], f_exp=[200, 100]).pvalue
    assert srm["p_value"] == pytest.approx(want, rel=1e-9)
    assert srm["flagged"] is False


def test_a_mismatch_while_an_arm_is_paused_is_still_flagged(db: Database) -> None:
    srm = _paused(db, {"ctl": 170, "t1": 130})["srm"]
    want = stats.chisquare([170, 130], f_exp=[200, 100]).pvalue
    assert srm["p_value"] == pytest.approx(want, rel=1e-9)
    assert srm["flagged"] is True


def test_units_in_a_paused_arm_after_its_pause_are_flagged(db: Database) -> None:
    stray = _paused(db, {"ctl": 200, "t1": 100, "t2": 5})["srm"]
    assert stray["p_value"] == 0.0 and stray["flagged"] is True


def test_a_pause_an_older_version_did_not_date_is_dated_from_the_data(db: Database) -> None:
    """Paused before pauses were dated (a store upgraded from an older version): the pause had
    surely begun by the first whole hour after the paused arm's last new unit; from then on
    the check runs (it said "not tested" for as long as the arm stayed paused)."""
    res = _paused(db, {"ctl": 203, "t1": 97}, since=False)
    srm = res["srm"]
    assert srm["since_inferred"] is True and srm["error"] is None
    assert srm["since"].startswith((T0 + HOUR).strftime("%Y-%m-%dT%H:00"))
    assert srm["units"] == {"ctl": 203, "t1": 97, "t2": 0}
    want = stats.chisquare([203, 97], f_exp=[200, 100]).pvalue
    assert srm["p_value"] == pytest.approx(want, rel=1e-9) and srm["flagged"] is False


def test_a_mismatch_after_an_undated_pause_is_flagged(db: Database) -> None:
    skewed = _paused(db, {"ctl": 170, "t1": 130}, since=False)["srm"]
    assert skewed["since_inferred"] is True and skewed["flagged"] is True


def test_without_a_change_every_unit_is_tested_against_the_weights(db: Database) -> None:
    exp = add_experiment(db)
    _set(db, exp, allocation={"table": allocate([0.5, 0.5]).to_json()})
    _units(db, {"control": 130, "treatment": 70}, T0, "a")
    with db.session() as s:
        srm = experiment_results(s, exp)["srm"]
    assert srm["since"] is None
    assert srm["p_value"] == pytest.approx(stats.chisquare([130, 70]).pvalue, rel=1e-9)
    assert srm["flagged"] is True


def test_no_unit_since_a_pause_is_said_so_not_none_assigned(db: Database) -> None:
    """The arms' 300 units came before the pause took effect: the check has none to count yet,
    which is not "no units have been assigned yet" (an experiment with 300 units)."""
    res = _paused(db, {})
    srm = res["srm"]
    assert srm["units"] == {"ctl": 0, "t1": 0, "t2": 0} and srm["p_value"] is None
    assert srm["error"].startswith(f"no unit has arrived since {srm['since']}: the split "
                                   "changed"), srm["error"]
    assert "assigned yet" not in srm["error"]
