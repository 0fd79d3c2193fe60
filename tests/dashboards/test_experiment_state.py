"""The Experiments page and the Operations guardrail table after an arm pause or a kill: the
arms keep their observed units, the sample-ratio line says the check restarted at the new
split (not "no units have been assigned yet"), a paused arm reads as paused with its traffic
now, a killed experiment's decision says it is killed, and events are never dated with the
experiment's start."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from core.store.db import Database, utcnow
from core.store.models import Experiment, ServedPrediction
from dashboards import data
from dashboards import operations as ops
from dashboards.pages import experiments
from dashboards.pages import operations as operations_page
from dashboards.tables import isolate
from serving.experiments import Experiments
from serving.guardrails import GuardrailMonitor
from serving.registry import Registry
from tests.evaluation.helpers import T0, add_experiment, apply, prediction
from tests.support.dash_tree import component_text, find_component

UNITS = {"control": 12, "treatment": 18}
PAUSED_AT = T0 + timedelta(hours=2, minutes=10)


def _seed(db: Database, name: str = "exp", scope: str = "default") -> int:
    exp = add_experiment(db, name=name, scope=scope)
    cand = {"control": "cand-a", "treatment": "cand-b"}
    apply(db, [prediction(f"{name}-{arm}-{i}", experiment_id=exp, arm=arm, candidate=cand[arm],
                          unit_id=f"{name}-{arm}-u{i}")
               for arm, n in UNITS.items() for i in range(n)])
    return exp


def _set(db: Database, exp: int, **values: Any) -> None:
    with db.session() as s:
        s.execute(update(Experiment).where(Experiment.id == exp).values(**values))


def _pause_treatment(db: Database, exp: int) -> None:
    with db.session() as s:
        arms = [dict(a) for a in s.get(Experiment, exp).arms]
    arms[1]["paused"] = "paused by an operator"
    _set(db, exp, arms=arms, allocation={"since": PAUSED_AT.isoformat()},
         status_reason="arm 'treatment' paused: paused by an operator")


def _rows(page: object) -> list[str]:
    tbody = find_component(page, "exp-arms").children[1]
    return [" | ".join(component_text(td) for td in tr.children) for tr in tbody.children]


def test_after_an_arm_pause_the_arms_keep_their_units_and_the_check_says_it_restarted(
        db: Database) -> None:
    exp = _seed(db)
    _pause_treatment(db, exp)
    page = experiments.body(db, exp, "all", data.Window())
    control, treatment = _rows(page)
    # arm | candidate | role | configured weight | traffic now | units observed | expected | …
    assert control.split(" | ")[4:6] == ["100%", "12"], control
    assert treatment.split(" | ")[4:6] == ["0%", "18"], treatment
    assert "paused: paused by an operator" in treatment.split(" | ")[2]
    line = component_text(find_component(page, "exp-srm"))
    assert "no units have been assigned" not in line
    restart = PAUSED_AT.replace(minute=0) + timedelta(hours=1)  # the next whole hour
    assert f"restarts at {restart:%Y-%m-%d %H:%M} UTC" in line
    assert f"{isolate('control')} 0, {isolate('treatment')} 0" in line and "no units since" in line


def test_a_killed_experiments_decision_says_it_is_killed(db: Database) -> None:
    exp = _seed(db)
    _set(db, exp, status="killed", status_reason="kill switch: error spike")
    page = experiments.body(db, exp, "all", data.Window())
    decision = component_text(find_component(page, "exp-decision"))
    assert "Decision: keep running" not in decision
    assert "killed" in decision and "kill switch: error spike" in decision
    assert find_component(page, "exp-decision").className == "decision stop"
    # One remedy, once: it also read "run a new experiment to gather more" below this one.
    assert decision.count("resume it to gather more, or stop it") == 1, decision
    assert "run a new experiment" not in decision and decision.count("killed") == 1, decision
    assert "the evidence so far was not enough for a decision" in decision
    control, treatment = _rows(page)
    assert control.split(" | ")[4] == "100%" and treatment.split(" | ")[4] == "0%"


def test_guardrail_events_are_dated_by_the_event_not_the_start(db: Database) -> None:
    paused = _seed(db, "paused-one", "a")
    killed = _seed(db, "killed-one", "b")
    _pause_treatment(db, paused)
    _set(db, killed, status="killed", status_reason="kill switch")
    events = {(e["experiment_id"], e["status"]): e["at"] for e in ops.guardrail_events(db)}
    assert events[(killed, "killed")] is None  # a kill keeps no time: "–", not T0
    assert events[(paused, "arm paused")] == PAUSED_AT
    assert (paused, "running") not in events  # its reason restates the arm's pause
    assert T0 not in events.values()


def test_a_comparison_never_tested_says_why_not_inconclusive(db: Database) -> None:
    """An arm at weight 0 has no traffic: its rows read "inconclusive" as if a test had run."""
    exp = add_experiment(db, arms=[
        {"name": "control", "candidate": "cand-a", "weight": 1.0, "control": True},
        {"name": "idle", "candidate": "cand-b", "weight": 0.0, "control": False}])
    apply(db, [prediction(f"c{i}", experiment_id=exp, arm="control", candidate="cand-a")
               for i in range(30)])
    page = experiments.body(db, exp, "all", data.Window())
    tbody = find_component(page, "exp-comparisons").children[1]
    verdicts = {component_text(tr.children[1]): component_text(tr.children[-1])
                for tr in tbody.children}
    assert verdicts["latency_ms"] == "treatment has no observations", verdicts
    assert verdicts["exact_match"] == "control has no observations", verdicts  # no truths
    assert "inconclusive" not in verdicts.values()


def test_a_comparison_tested_without_a_difference_stays_inconclusive(db: Database) -> None:
    exp = add_experiment(db)
    cand = {"control": "cand-a", "treatment": "cand-b"}
    apply(db, [prediction(f"{arm}{i}", experiment_id=exp, arm=arm, candidate=cand[arm],
                          latency_ms=10.0 + i % 7) for arm in cand for i in range(30)])
    page = experiments.body(db, exp, "all", data.Window())
    tbody = find_component(page, "exp-comparisons").children[1]
    verdicts = {component_text(tr.children[1]): component_text(tr.children[-1])
                for tr in tbody.children}
    assert verdicts["latency_ms"] == "inconclusive", verdicts


def test_each_pause_is_listed_once_with_who_made_it(db: Database) -> None:
    """A guardrail's arm pause was listed twice (the arm, and the running experiment's reason
    restating it), and an admin's pause or kill by hand read as a guardrail event."""
    registry = Registry(db)
    for name in ("a", "b"):
        registry.register(name, "1")
    steer = Experiments(db)
    arms = [{"name": "control", "candidate": "a", "weight": 1, "control": True},
            {"name": "slow", "candidate": "b", "weight": 1},
            {"name": "other", "candidate": "b", "weight": 1}]
    guarded = steer.start(steer.create({"name": "guarded", "scope": "g", "arms": arms,
                                        "guardrails": {"p99_latency_ms": 50,
                                                       "min_samples": 40}})["id"])
    monitor = GuardrailMonitor(steer, db, check_every=40)
    for i in range(40):
        with db.session() as s:
            s.add(ServedPrediction(prediction_id=f"p{i}", experiment_id=guarded["id"],
                                   candidate="b", arm="slow", latency_ms=80.0, error=False,
                                   created_at=utcnow()))
        monitor.observe(guarded, "slow", 80.0, False)
    steer.pause_arm(guarded["id"], "other")  # by hand
    killed = steer.create({"name": "killed", "scope": "k", "arms": arms[:2]})["id"]
    steer.start(killed)
    steer.kill(killed)
    events = [(e["experiment_id"], e["status"], e["arm"], e["by"])
              for e in ops.guardrail_events(db)]
    assert events == [(killed, "killed", None, "admin"),
                      (guarded["id"], "arm paused", "slow", "guardrail"),
                      (guarded["id"], "arm paused", "other", "admin")]
    rows = find_component(operations_page.health(db), "ops-guardrails").children[1].children
    assert [component_text(tr.children[3]) for tr in rows] == [
        "an admin (manual)", "guardrail", "an admin (manual)"]
