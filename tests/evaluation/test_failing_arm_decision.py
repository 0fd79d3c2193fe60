"""The decision never ships an arm for failing: a failed request reaches nobody to correct it,
so an arm failing half its requests looked better on the correction rate and was shipped (the
exploratory pass's D1). An arm that fails significantly more than control is stopped, guardrail
or not; a paused arm is told it gathers nothing until resumed (D4); a window's hours are said,
and one reaching year 9999's last hour reads instead of failing (D3)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

from core.store.db import Database
from core.store.models import Experiment
from dashboards.tables import verdict_text
from evaluation import decisions
from evaluation.results import experiment_results
from tests.evaluation.helpers import T0, add_experiment, apply, correction, prediction

ARMS = [{"name": "control", "candidate": "cand-a", "weight": 0.5, "control": True},
        {"name": "half", "candidate": "cand-b", "weight": 0.5, "control": False}]


def _traffic(exp: int, n: int = 600) -> list[dict]:
    """Control: n answers, 13 % corrected. Half: n requests, every other one failing; 13 % of
    its answers corrected (so 6.5 % of its requests)."""
    batch = []
    for i in range(n):
        batch.append(prediction(f"c{i}", experiment_id=exp, arm="control", candidate="cand-a"))
        if i % 100 < 13:
            batch.append(correction(f"c{i}", "y"))
        failed = i % 2 == 1
        batch.append(prediction(f"h{i}", experiment_id=exp, arm="half", candidate="cand-b",
                                output="" if failed else "x^{2}",
                                error="the stage raised" if failed else None))
        if not failed and (i // 2) % 100 < 13:
            batch.append(correction(f"h{i}", "y"))
    return batch


def test_an_arm_that_fails_half_its_requests_is_stopped_not_shipped(db: Database) -> None:
    exp = add_experiment(db, arms=ARMS)
    apply(db, _traffic(exp))
    with db.session() as s:
        results = experiment_results(s, exp)
    rec = next(r for r in results["comparisons"] if r["metric"] == "correction_rate"
               and r["slice"] == "all" and r["treatment"] == "half")
    assert rec["verdict"] == "better"  # per request it is corrected less: it answers less
    decision = results["decision"]
    assert decision["action"] == decisions.STOP and decision["arms"] == {"half": decisions.STOP}
    (reason,) = decision["reasons"]
    assert reason.startswith("arm 'half' fails significantly more often than control: error "
                             "rate")


def test_a_paused_arm_is_told_it_takes_no_traffic(db: Database) -> None:
    exp = add_experiment(db, arms=[ARMS[0], {**ARMS[1], "paused": "p99 latency guardrail"}])
    apply(db, [prediction(f"{arm}-{i}", experiment_id=exp, arm=arm, candidate=cand)
               for arm, cand in (("control", "cand-a"), ("half", "cand-b")) for i in range(150)])
    with db.session() as s:
        results = experiment_results(s, exp)
    assert results["variants"][1]["paused"] == "p99 latency guardrail"
    (reason,) = results["decision"]["reasons"]
    assert reason.startswith("arm 'half' is paused (p99 latency guardrail), so it takes no "
                             "traffic and gathers no more data")
    assert "more predictions per arm" not in reason


def test_a_window_says_its_hours_and_may_end_in_year_9999(db: Database) -> None:
    exp = add_experiment(db, arms=ARMS)
    apply(db, _traffic(exp, 40))
    with db.session() as s:
        s.execute(update(Experiment).where(Experiment.id == exp).values(status="stopped"))
    since = T0.replace(minute=20)
    with db.session() as s:
        windowed = experiment_results(s, exp, since=since, until=since.replace(minute=21))
        open_ended = experiment_results(s, exp, since=since,
                                        until=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    hour = T0.replace(minute=0)
    assert windowed["window"] == {"since": hour.isoformat(),
                                  "until": hour.replace(hour=hour.hour + 1).isoformat()}
    assert open_ended["window"] == {"since": hour.isoformat(), "until": None}
    assert open_ended["metrics"]["control"]["all"]["predictions"] == 40
    with db.session() as s:
        assert experiment_results(s, exp)["window"] is None


def test_an_arm_that_fails_fast_is_told_its_speed_may_be_failing(db: Database) -> None:
    """Half's failures took 0.5 ms, its answers as long as control's: its latency read
    "better" beside an error rate "worse", with nothing to say why."""
    exp = add_experiment(db, arms=ARMS)
    batch = []
    for i in range(400):
        ms = 10.0 + i % 7
        batch.append(prediction(f"c{i}", experiment_id=exp, arm="control", candidate="cand-a",
                                latency_ms=ms))
        failed = i % 2 == 1
        batch.append(prediction(f"h{i}", experiment_id=exp, arm="half", candidate="cand-b",
                                output="" if failed else "x^{2}", latency_ms=0.5 if failed else ms,
                                error="the stage raised" if failed else None))
    apply(db, batch)
    with db.session() as s:
        results = experiment_results(s, exp)
    rows = {r["metric"]: r for r in results["comparisons"]
            if r["slice"] == "all" and r["treatment"] == "half"}
    assert rows["latency_ms"]["verdict"] == "better"  # every request counts, as on Operations
    assert rows["latency_ms"]["caveat"] == (
        "it fails more often than control (error rate 50.0% against 0.0%) and its failed "
        "requests count in its latency: part of this speed may be failing fast")
    assert rows["error_rate"]["caveat"] is None and rows["confidence"]["caveat"] is None
    shown = verdict_text(rows["latency_ms"])
    assert shown.startswith("better: it fails more often than control"), shown
