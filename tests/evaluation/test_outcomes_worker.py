"""Outcomes in the worker and the results: joined to their prediction or unit in either order
and days late, counted once, combined per unit, tested per unit (checked against scipy), ratios
by the delta method, and the decision on the primary metric and the guardrails."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timedelta
from itertools import count
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sqlalchemy import func, select

from core import events, receipts
from core.bus.base import Record
from core.errors import AbvocError, Conflict, Forbidden
from core.store.db import Database
from core.store.models import Outcome, OutcomeUnitValue, Prediction
from core.stream import apply_records
from evaluation.metric_definitions import define_metric, list_metrics
from evaluation.outcomes import apply_outcomes
from evaluation.results import experiment_results
from evaluation.stats import ratio_stats
from evaluation.worker import GROUP_ID, apply_events, receipt_check
from tests.evaluation.helpers import SECRET, T0, add_experiment, prediction

_OFFSETS = count()


def outcome(metric: str, value: Any, *, pid: str | None = None, unit: str | None = None,
            exp: int = 1, at: datetime = T0, oid: str | None = None) -> dict[str, Any]:
    link = {"prediction_id": pid, "receipt": receipts.sign(SECRET, pid)} if pid \
        else {"unit_id": unit}
    return events.make_event(events.OUTCOME_RECORDED, outcome_id=oid or uuid.uuid4().hex,
                             experiment_id=exp, metric=metric, value=float(value),
                             observed_at=at.isoformat(), **link)


def apply(db: Database, batch: list[dict[str, Any]]) -> int:
    """Through the stream's exactly-once path, as the worker applies a batch."""
    records = [Record("t", 0, next(_OFFSETS), events.route(e, "t").key, json.dumps(e).encode())
               for e in batch]
    return apply_records(db, GROUP_ID, records, apply_events)


def unit_rows(db: Database) -> dict[tuple[str, str, str], tuple[int, float]]:
    t = OutcomeUnitValue
    with db.session() as s:
        return {(r.arm, r.metric, r.unit_id): (r.n, r.total)
                for r in s.execute(select(t.arm, t.metric, t.unit_id, t.n, t.total))}


def define(db: Database, exp: int, name: str, kind: str, direction: str = "higher",
           **extra: Any) -> None:
    define_metric(db, exp, {"name": name, "kind": kind, "direction": direction, **extra})


@pytest.mark.parametrize("outcome_first", [True, False])
def test_outcome_joins_its_prediction_in_either_order_days_late(db: Database,
                                                                outcome_first: bool) -> None:
    exp = add_experiment(db)
    define(db, exp, "won", "proportion")
    pred = prediction("p1", experiment_id=exp, arm="treatment", unit_id="u1")
    late = outcome("won", True, pid="p1", exp=exp, at=T0 + timedelta(days=3), oid="o1")
    first, second = (late, pred) if outcome_first else (pred, late)
    assert apply(db, [first]) == 1
    if outcome_first:  # waiting: stored, not counted
        assert unit_rows(db) == {}
        with db.session() as s:
            assert s.get(Outcome, "o1").counted_at is None
    assert apply(db, [second]) == 1
    assert unit_rows(db) == {("treatment", "won", "u1"): (1, 1.0)}
    # The same events again (a replay) and the same outcome under a new event id: still once.
    assert apply(db, [first, second]) == 0
    again = dict(late, event_id=uuid.uuid4().hex)
    assert apply(db, [again, prediction("p2", experiment_id=exp, arm="treatment",
                                        unit_id="u1")]) == 2
    assert unit_rows(db) == {("treatment", "won", "u1"): (1, 1.0)}


def test_two_workers_joining_one_outcome_count_it_once(db: Database) -> None:
    """Two workers both see a waiting outcome whose prediction just arrived: the first claims
    it, the second's claim waits for the first to commit and then finds it counted."""
    exp = add_experiment(db)
    define(db, exp, "won", "proportion")
    apply(db, [outcome("won", 1, pid="p1", exp=exp, oid="o1")])
    with db.session() as s:  # the prediction, stored by a worker that has not joined it yet
        s.add(Prediction(prediction_id="p1", event_id="e-p1", experiment_id=exp, candidate="c",
                         arm="treatment", unit_id="u1", input_hash="h", output="x",
                         created_at=T0))
    claimed, release = threading.Event(), threading.Event()

    def first() -> None:
        with db.session() as s:
            apply_outcomes(s, [])
            claimed.set()
            release.wait(10)

    def second() -> None:
        with db.session() as s:
            apply_outcomes(s, [])

    one = threading.Thread(target=first)
    one.start()
    assert claimed.wait(10)
    two = threading.Thread(target=second)
    two.start()
    time.sleep(0.5)
    assert two.is_alive()  # held behind the first one's claim (row lock or SQLite's writer)
    release.set()
    one.join(10)
    two.join(10)
    assert unit_rows(db) == {("treatment", "won", "u1"): (1, 1.0)}


def test_unit_outcome_waits_for_the_units_first_prediction(db: Database) -> None:
    exp = add_experiment(db)
    define(db, exp, "minutes", "mean", combine="sum")
    apply(db, [outcome("minutes", 4.5, unit="u7", exp=exp),
               outcome("minutes", 2.0, unit="u7", exp=exp, at=T0 + timedelta(hours=1)),
               outcome("minutes", 9.0, unit="never-served", exp=exp, at=T0 + timedelta(minutes=9))])
    assert unit_rows(db) == {}
    # Waiting outcomes are shown, so a sender learns of ids the service never served.
    said = {"outcomes": 3, "oldest_observed_at": T0.isoformat()}
    assert list_metrics(db, exp)[0]["waiting"] == said
    with db.session() as s:
        assert experiment_results(s, exp)["outcomes"]["minutes"]["waiting"] == said
    apply(db, [prediction("p7", experiment_id=exp, arm="control", unit_id="u7")])
    apply(db, [prediction("p8", experiment_id=exp, arm="control", unit_id="u7")])
    assert unit_rows(db) == {("control", "minutes", "u7"): (2, 6.5)}
    # A later outcome of a known unit counts at once.
    apply(db, [outcome("minutes", 1.0, unit="u7", exp=exp)])
    assert unit_rows(db) == {("control", "minutes", "u7"): (3, 7.5)}
    assert list_metrics(db, exp)[0]["waiting"] == {
        "outcomes": 1, "oldest_observed_at": (T0 + timedelta(minutes=9)).isoformat()}


def test_shadow_and_forged_outcomes_never_count(db: Database) -> None:
    exp = add_experiment(db)
    define(db, exp, "won", "proportion")
    apply(db, [prediction("s1", experiment_id=exp, arm=None, shadow=True, candidate="cand-s"),
               outcome("won", 1, pid="s1", exp=exp, oid="o-s")])
    assert unit_rows(db) == {}
    with db.session() as s:
        row = s.get(Outcome, "o-s")
        assert row.counted_at is not None and row.arm is None  # settled, not waiting forever
    forged = dict(outcome("won", 1, pid="p1", exp=exp), receipt="0" * 64)
    with pytest.raises(Forbidden, match="no valid receipt"):
        receipt_check(SECRET)(forged)
    receipt_check(SECRET)(outcome("won", 1, unit="u1", exp=exp))  # unit outcomes carry none


def test_combine_rules_and_changed_definitions_read_the_same_rows(db: Database) -> None:
    exp = add_experiment(db)
    define(db, exp, "score", "mean", combine="first")
    batch = [prediction("pc", experiment_id=exp, arm="control", unit_id="uc"),
             prediction("pt", experiment_id=exp, arm="treatment", unit_id="ut")]
    for unit in ("uc", "ut"):  # out of time order on purpose
        batch += [outcome("score", 3.0, unit=unit, exp=exp, at=T0 + timedelta(hours=2)),
                  outcome("score", 5.0, unit=unit, exp=exp, at=T0 + timedelta(hours=1)),
                  outcome("score", 1.0, unit=unit, exp=exp, at=T0 + timedelta(hours=3))]
    apply(db, batch[:4])
    apply(db, batch[4:])
    expected = {"first": 5.0, "sum": 9.0, "mean": 3.0, "max": 5.0}
    for combine, value in expected.items():
        define(db, exp, "score", "mean", combine=combine)
        with db.session() as s:
            shown = experiment_results(s, exp)["outcomes"]["score"]
        assert shown["combine"] == combine
        assert shown["arms"]["control"] == {**shown["arms"]["control"], "units": 1,
                                            "mean": value}
    assert unit_rows(db)[("control", "score", "uc")] == (3, 9.0)  # nothing counted again


def _arm_traffic(exp: int, rng: np.random.Generator, arm: str, units: int, shift: float,
                 win_rate: float) -> tuple[list[dict], dict[str, list]]:
    """Units with several requests each and several outcomes each."""
    batch, per_unit = [], {"score": [], "won": [], "clicks": [], "sessions": []}
    for u in range(units):
        unit = f"{arm}-{u}"
        for r in range(int(rng.integers(1, 5))):
            batch.append(prediction(f"{unit}-{r}", experiment_id=exp, arm=arm, unit_id=unit,
                                    candidate="cand-a" if arm == "control" else "cand-b"))
        scores = rng.normal(10 + shift, 3, int(rng.integers(1, 4)))
        won = bool(rng.random() < win_rate)
        sessions = int(rng.integers(1, 6))
        clicks = int(rng.binomial(sessions, rng.beta(2, 5)))
        batch += [outcome("score", float(v), pid=f"{unit}-0", exp=exp) for v in scores]
        batch += [outcome("won", won, unit=unit, exp=exp)]
        batch += [outcome("clicks", 1.0, unit=unit, exp=exp) for _ in range(clicks)]
        batch += [outcome("sessions", 1.0, unit=unit, exp=exp) for _ in range(sessions)]
        per_unit["score"].append(float(np.mean(scores)))
        per_unit["won"].append(won)
        per_unit["clicks"].append(clicks)
        per_unit["sessions"].append(sessions)
    return batch, per_unit


def test_results_are_tested_per_unit_against_scipy_and_the_delta_method(db: Database) -> None:
    exp = add_experiment(db)
    define(db, exp, "score", "mean", combine="mean", guardrail=9.0)
    define(db, exp, "won", "proportion", primary=True)
    define(db, exp, "clicks", "mean", combine="sum")
    define(db, exp, "sessions", "mean", combine="sum")
    define(db, exp, "ctr", "ratio", numerator="clicks", denominator="sessions")
    rng = np.random.default_rng(5)
    control, c = _arm_traffic(exp, rng, "control", 150, 0.0, 0.6)
    treatment, t = _arm_traffic(exp, rng, "treatment", 150, -2.5, 0.3)
    batch = control + treatment
    order = rng.permutation(len(batch))  # any order: outcomes before their predictions too
    shuffled = [batch[i] for i in order]
    for lo in range(0, len(shuffled), 700):
        apply(db, shuffled[lo:lo + 700])
    with db.session() as s:
        results = experiment_results(s, exp)
    records = {r["metric"]: r for r in results["comparisons"]
               if r["slice"] == "all" and r["treatment"] == "treatment"}
    score = records["score"]
    welch = stats.ttest_ind(t["score"], c["score"], equal_var=False)
    assert (score["n_control"], score["n_treatment"]) == (150, 150)  # units, not requests
    assert score["statistic"] == pytest.approx(welch.statistic, rel=1e-9)
    assert score["p_value"] == pytest.approx(welch.pvalue, rel=1e-7)
    assert score["control_mean"] == pytest.approx(np.mean(c["score"]), rel=1e-12)
    won = records["won"]
    assert won["kind"] == "proportion" and won["n_control"] == 150
    assert won["treatment_mean"] == pytest.approx(np.mean(t["won"]))
    ctr = records["ctr"]
    rc, rt = ratio_stats(c["clicks"], c["sessions"]), ratio_stats(t["clicks"], t["sessions"])
    assert ctr["kind"] == "ratio"
    assert ctr["control_mean"] == pytest.approx(rc.ratio, rel=1e-12)
    assert ctr["statistic"] == pytest.approx(
        (rt.ratio - rc.ratio) / np.sqrt(rc.variance_of_ratio + rt.variance_of_ratio), rel=1e-9)
    assert ctr["p_holm"] is not None  # in the multiple-comparison family with the rest
    assert not any(r["metric"] == "ctr" and r["slice"] != "all"
                   for r in results["comparisons"])
    # The decision: primary 'won' is worse for the treatment, and its score breaches 9.0.
    assert results["experiment"]["primary_metric"] == "won"
    decision = results["decision"]
    assert decision["arms"] == {"treatment": "stop"}
    assert any("score" in r and "guardrail 9" in r for r in decision["reasons"])
    assert results["outcomes"]["score"]["arms"]["treatment"]["units"] == 150


def test_primary_metric_decides_when_no_guardrail_fails(db: Database) -> None:
    exp = add_experiment(db)
    define(db, exp, "won", "proportion", primary=True)
    rng = np.random.default_rng(9)
    batch = _arm_traffic(exp, rng, "control", 200, 0.0, 0.3)[0] \
        + _arm_traffic(exp, rng, "treatment", 200, 0.0, 0.6)[0]
    apply(db, [e for e in batch if e["event_type"] != events.OUTCOME_RECORDED
               or e["metric"] == "won"])
    with db.session() as s:
        decision = experiment_results(s, exp)["decision"]
    assert decision["action"] == "ship" and decision["arm"] == "treatment"
    assert "significantly better on won" in decision["reasons"][0]


def test_definitions_are_checked(db: Database) -> None:
    exp = add_experiment(db)
    define(db, exp, "won", "proportion", primary=True)
    define(db, exp, "ctr_part", "mean", combine="sum")
    for body, fragment in (
        ({"name": "latency_ms", "kind": "mean", "direction": "lower"}, "built-in"),
        ({"name": "r", "kind": "ratio", "direction": "higher", "numerator": "nope",
          "denominator": "won"}, "not defined"),
        ({"name": "x", "kind": "proportion", "direction": "higher", "combine": "sum"},
         "first or max"),
        ({"name": "x", "kind": "mean", "direction": "up"}, "direction"),
        ({"name": "X!", "kind": "mean", "direction": "higher"}, "metric name"),
        ({"name": "x", "kind": "mean", "direction": "higher", "numerator": "won"}, "ratio"),
    ):
        with pytest.raises(AbvocError, match=fragment) as info:
            define_metric(db, exp, body)
        assert info.value.status == 400
    with pytest.raises(Conflict, match="already the primary"):
        define(db, exp, "other", "mean", primary=True)
    define(db, exp, "share", "ratio", numerator="ctr_part", denominator="won")
    with pytest.raises(Conflict, match="part of the ratio"):
        define(db, exp, "won", "ratio", numerator="ctr_part", denominator="share")
    apply(db, [outcome("ctr_part", 2.0, unit="u", exp=exp)])
    with pytest.raises(Conflict, match="kind cannot become proportion"):
        define(db, exp, "ctr_part", "proportion")
    define(db, exp, "ctr_part", "mean", direction="lower", combine="max", guardrail=3)
    names = [m["name"] for m in list_metrics(db, exp)]
    assert names == ["ctr_part", "share", "won"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Outcome)) == 1
