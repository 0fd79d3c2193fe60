"""The weekly report's data flags a running experiment that served nothing in the week,
follows each experiment's primary metric (an outcome metric included) in its figures and its
week-over-week rows, and says when units served in two arms were left out of its outcome
metrics."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from markupsafe import escape

from core import events
from core.store.db import Database
from core.store.models import Experiment
from dashboards.report.render import render_html
from evaluation.metric_definitions import define_metric
from evaluation.weekly import primary_interval, weekly_data
from tests.evaluation.helpers import T0, add_experiment, prediction
from tests.evaluation.test_ratio_one_unit import apply

WEEK = "2026-W47"  # holds T0


def _outcome(exp: int, unit: str, value: float) -> dict[str, Any]:
    return events.make_event(events.OUTCOME_RECORDED, outcome_id=uuid.uuid4().hex,
                             experiment_id=exp, metric="basket_value", value=value,
                             observed_at=T0.isoformat(), unit_id=unit)


def _with_outcomes(db: Database) -> int:
    """Two arms, 10 units each, every unit's basket worth 10 (control) or 12 (treatment)."""
    exp = add_experiment(db, name="baskets")
    define_metric(db, exp, {"name": "basket_value", "kind": "mean", "direction": "higher",
                            "combine": "sum", "primary": True})
    batch = []
    for i in range(20):
        arm, unit = ("control", "treatment")[i % 2], f"unit-{i}"
        batch += [prediction(f"p{i}", experiment_id=exp, arm=arm, unit_id=unit,
                             candidate="cand-a" if arm == "control" else "cand-b"),
                  _outcome(exp, unit, 10.0 if arm == "control" else 12.0)]
    apply(db, batch)
    return exp


def _own_scope(db: Database, exp: int) -> int:
    """One running experiment per traffic scope: each test experiment gets its own."""
    with db.session() as s:
        s.get(Experiment, exp).scope = f"scope-{exp}"
    return exp


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_running_experiment_with_no_traffic_is_flagged(db: Database) -> None:
    busy = _own_scope(db, _with_outcomes(db))
    idle = _own_scope(db, add_experiment(db, name="idle rollout"))
    stopped = _own_scope(db, add_experiment(db, name="stopped one"))
    later = _own_scope(db, add_experiment(db, name="started after the week"))
    with db.session() as s:
        s.get(Experiment, stopped).status = "stopped"
        s.get(Experiment, later).created_at = T0 + timedelta(days=30)
    with db.reading() as s:
        data = weekly_data(s, WEEK)
    assert [e["id"] for e in data["experiments"]] == [busy]
    assert data["no_traffic"] == [{"id": idle, "name": "idle rollout", "status": "running"}]
    html = render_html(data)
    assert "Running, no traffic this week:" in html and "idle rollout" in html
    assert "stopped one" not in html and "started after the week" not in html


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_one_that_served_only_the_week_before_is_not_counted_as_having_traffic(
        db: Database) -> None:
    """The week after the traffic shows the experiment for its week over week, but its
    summary said "1 experiment with traffic" beside "1 experiment running, no traffic this
    week"."""
    exp = _own_scope(db, _with_outcomes(db))
    with db.reading() as s:
        data = weekly_data(s, "2026-W48")
    assert [e["id"] for e in data["experiments"]] == [exp]
    assert data["with_traffic"] == 0 and [x["id"] for x in data["no_traffic"]] == [exp]
    html = render_html(data)
    assert "0 experiments with traffic this week" in html
    with db.reading() as s:
        assert weekly_data(s, WEEK)["with_traffic"] == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_primary_outcome_metric_leads_the_figures_and_the_trends(db: Database) -> None:
    exp = _with_outcomes(db)
    with db.reading() as s:
        data = weekly_data(s, WEEK)
    (e,) = data["experiments"]
    assert e["id"] == exp and e["primary_metric"] == "basket_value"
    assert e["primary"]["control"]["value"] == pytest.approx(10.0)
    assert e["primary"]["treatment"]["value"] == pytest.approx(12.0)
    first = {t["variant"]: t for t in e["trends"][::-1]}  # each variant's first row
    assert first["treatment"]["metric"] == "basket_value" and first["treatment"]["primary"]
    assert first["treatment"]["current"] == pytest.approx(12.0)
    assert first["treatment"]["previous"] is None  # no units the week before
    assert "<b>basket_value</b>" in render_html(data)
    assert e["primary_interval"] == "confidence interval"
    # A name that overrides the text's direction stays within its own isolate: the report's
    # "(#id, status)" after it read backwards.
    e["name"] = "baskets \u202eRTL"
    assert f"<h3><bdi>baskets \u202eRTL</bdi> <span class=\"muted\">(#{exp}, " in render_html(data)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_units_served_in_two_arms_are_noted_where_the_outcomes_leave_them_out(
        db: Database) -> None:
    exp = _with_outcomes(db)
    with db.reading() as s:
        assert weekly_data(s, WEEK)["experiments"][0]["several_arms_note"] is None
    # unit-0 was served in control; a canary step moves it to treatment within the week, and
    # it buys once more (by unit id: counted in control, its first arm, were it not left out).
    apply(db, [prediction("p0-moved", experiment_id=exp, arm="treatment", unit_id="unit-0",
                          candidate="cand-b", at=T0 + timedelta(hours=1)),
               _outcome(exp, "unit-0", 20.0)])
    with db.reading() as s:
        data = weekly_data(s, WEEK)
    (e,) = data["experiments"]
    assert e["several_arms_note"].startswith("1 unit(s) (5.0% of the experiment's) were "
                                             "served in more than one arm")
    assert e["primary"]["control"]["value"] == pytest.approx(10.0)  # 12 with unit-0's 30
    assert f"Note: {escape(e['several_arms_note'])}." in render_html(data)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_decisions_intervals_and_verdicts_are_said_in_words(db: Database) -> None:
    """The report printed `keep_running`, a missing interval as "– to –", and "inconclusive"
    for a comparison never tested (no truths: exact match)."""
    _with_outcomes(db)
    with db.reading() as s:
        data = weekly_data(s, WEEK)
    data["experiments"][0]["decision"]["action"] = "keep_running"
    html = render_html(data)
    assert "Decision: <b>keep running</b>" in html and "keep_running" not in html
    assert "– to –" not in html and "<td class=\"ci\">no interval</td>" in html
    untested = next(c for c in data["experiments"][0]["comparisons"]
                    if c["metric"] == "exact_match")
    assert untested["verdict"] == "inconclusive" and untested["error"]
    assert f"<td>{untested['error']}</td>" in html


def test_the_primary_chart_names_the_interval_it_draws() -> None:
    """The correction rate's interval is Wilson's per prediction, but the delta method's over
    units where units sent several requests (the report called both Wilson)."""
    per_unit = {"analysis_unit": {"per_unit": ["correction_rate"]}, "outcomes": {}}
    per_prediction = {"analysis_unit": {"per_unit": []}, "outcomes": {}}
    assert primary_interval(per_unit, "correction_rate") == \
        "interval over units (delta method)"
    assert primary_interval(per_prediction, "correction_rate") == "Wilson interval"
    assert primary_interval(per_prediction, "exact_match") == "confidence interval"
    outcome = {"analysis_unit": {"per_unit": ["basket"]}, "outcomes": {"basket": {}}}
    assert primary_interval(outcome, "basket") == "confidence interval"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_one_experiment_whose_figures_fail_leaves_the_others_report(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stored sum past float range made one experiment's results raise, and with it the
    whole week's report, every Monday: it is named, the others are reported."""
    from evaluation import weekly

    busy = _own_scope(db, _with_outcomes(db))
    broken = _own_scope(db, add_experiment(db, name="overflowed"))
    apply(db, [prediction(f"b{i}", experiment_id=broken, arm=("control", "treatment")[i % 2],
                          unit_id=f"b-unit-{i}") for i in range(4)])
    real = weekly.experiment_week

    def week_of(session, experiment, week, until):  # noqa: ANN001, ANN202
        if experiment.id == broken:
            raise ValueError("mean metric sum must be finite")
        return real(session, experiment, week, until)

    monkeypatch.setattr(weekly, "experiment_week", week_of)
    with db.reading() as s:
        data = weekly_data(s, WEEK)
    assert [e["id"] for e in data["experiments"]] == [busy]
    assert data["failed"] == [{"id": broken, "name": "overflowed",
                               "reason": "mean metric sum must be finite"}]
    assert "Results that could not be computed:" in render_html(data)
