"""The Experiments page's data: the evaluation results for a slice and a time window, each
arm's intervals, and the always-valid interval over time; the callbacks' plain functions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from statsmodels.stats.proportion import proportion_confint

from core import events
from dashboards import data
from dashboards.pages import experiments as page
from evaluation import unit_recount
from evaluation.metric_definitions import define_metric
from evaluation.online import hour_window
from evaluation.results import experiment_results
from tests.dashboards.conftest import HOURS, PER_HOUR, SLICES
from tests.evaluation.helpers import T0, add_experiment, apply, flow, prediction
from tests.evaluation.test_unit_analysis import clustered
from tests.support.dash_tree import component_text, find_component


def _db(app: Flask):  # noqa: ANN202
    return app.extensions["abvoc"].db


def test_hour_window_widens_to_whole_hours() -> None:
    hour = T0.replace(minute=0)
    start, end = hour_window(T0, T0 + timedelta(minutes=30))  # 10:15 to 10:45
    assert start == hour and end == hour + timedelta(hours=1)
    assert hour_window(T0, T0 + timedelta(minutes=50)) == (hour, hour + timedelta(hours=2))
    assert hour_window(None, hour) == (None, hour)


def test_a_time_window_keeps_only_its_hours(dash_app: Flask, seeded: int) -> None:
    db = _db(dash_app)
    everything = data.results(db, seeded)
    first = T0.replace(minute=0)
    one_hour = data.results(db, seeded, data.Window(first, first + timedelta(hours=1)))
    for arm in ("control", "treatment"):
        assert everything["metrics"][arm]["all"]["predictions"] == HOURS * PER_HOUR * 2
        assert one_hour["metrics"][arm]["all"]["predictions"] == PER_HOUR * 2
        assert one_hour["srm"]["units"][arm] == PER_HOUR * 2
    assert everything["srm"]["units"] == {"control": 180, "treatment": 180}
    later = data.results(db, seeded, data.Window(first + timedelta(hours=5), None))
    assert later["metrics"] == {"control": {}, "treatment": {}}


def test_arm_intervals_are_wilson_for_rates(dash_app: Flask, seeded: int) -> None:
    rows = data.arm_intervals(_db(dash_app), seeded, "handwritten/high")
    control = next(r for r in rows if r["variant"] == "control"
                   and r["metric"] == "correction_rate")
    corrected = round(SLICES["handwritten/high"][0] * PER_HOUR) * HOURS
    low, high = proportion_confint(corrected, HOURS * PER_HOUR, method="wilson")
    assert control["mean"] == pytest.approx(corrected / (HOURS * PER_HOUR))
    assert (control["low"], control["high"]) == (pytest.approx(low), pytest.approx(high))
    latency = next(r for r in rows if r["variant"] == "treatment" and r["metric"] == "latency_ms")
    assert latency["low"] < latency["mean"] < latency["high"]


def test_sequential_series_has_a_point_per_hour(dash_app: Flask, seeded: int) -> None:
    series = data.sequential_series(_db(dash_app), seeded, "correction_rate", "all")
    assert [r["until"] for r in series] == [T0.replace(minute=0) + timedelta(hours=h + 1)
                                            for h in range(HOURS)]
    assert {r["treatment"] for r in series} == {"treatment"}
    widths = [r["high"] - r["low"] for r in series]
    assert widths[0] > widths[-1]  # more data, narrower always-valid interval
    # Each look tests slice `all` alone and reads no latency histogram, and gives what the
    # results of the whole experiment do (latency's figures too: they come from its sums).
    with _db(dash_app).reading() as s:
        table = experiment_results(s, seeded, until=series[-1]["until"], per_unit=False)
    for metric in ("correction_rate", "latency_ms"):
        look = data.sequential_series(_db(dash_app), seeded, metric, "all")[-1]
        last = next(r for r in table["comparisons"]
                    if r["metric"] == metric and r["slice"] == "all")
        assert (look["low"], look["high"], look["p_value"]) == (
            last["sequential_ci_low"], last["sequential_ci_high"], last["sequential_p_value"])


def test_page_functions_follow_the_filters(dash_app: Flask, seeded: int) -> None:
    db = _db(dash_app)
    with dash_app.test_request_context("/dashboard/experiments"):
        options, value, hours, span, marks = page.controls(db, seeded)
        assert options == ["all", "handwritten/high", "printed/middle"] and value == "all"
        assert hours == HOURS and span == [0, HOURS] and len(marks) == 2
        assert page.window_of(db, seeded, [0, HOURS]) == data.Window()
        window = page.window_of(db, seeded, [1, 2])
        assert window.since == T0.replace(minute=0) + timedelta(hours=1)
        assert "2026-11-20 11:00" in page.describe(window)
        whole, handwriting = (str(page.body(db, seeded, s, data.Window()))
                              for s in ("all", "handwritten/high"))
        assert whole != handwriting
        assert "Sample-ratio check (chi-square, all units)" in whole
        assert "Sample-ratio check in slice handwritten/high" in handwriting


def _converted(app: Flask, experiment_id: int) -> None:
    """A primary outcome metric, `converted`, reported for 20 units of each arm (5 and 10)."""
    services = app.extensions["abvoc"]
    define_metric(services.db, experiment_id, {"name": "converted", "kind": "proportion",
                                               "direction": "higher", "primary": True})
    batch = [events.make_event(events.OUTCOME_RECORDED, outcome_id=f"o-{arm}-{i}",
                               experiment_id=experiment_id, metric="converted",
                               value=float(i < wins), observed_at=T0.isoformat(),
                               unit_id=f"u-{arm}pr0-{i:03d}")
             for arm, wins in (("c", 5), ("t", 10)) for i in range(20)]
    assert flow(services.db, services.bus, batch, services.settings.topic_prefix) == len(batch)


def test_outcome_metrics_show_per_arm_and_why_not_in_a_slice(dash_app: Flask,
                                                              seeded: int) -> None:
    db = _db(dash_app)
    _converted(dash_app, seeded)
    res = data.results(db, seeded)
    assert res["experiment"]["primary_metric"] == "converted"
    rows = {r["variant"]: r for r in data.outcome_intervals(res)}
    low, high = proportion_confint(5, 20, method="wilson")
    assert (rows["control"]["n"], rows["control"]["mean"]) == (20, pytest.approx(0.25))
    assert (rows["control"]["low"], rows["control"]["high"]) == (pytest.approx(low),
                                                                 pytest.approx(high))
    assert rows["treatment"]["mean"] == pytest.approx(0.5)
    with dash_app.test_request_context("/dashboard/experiments"):
        whole = page.body(db, seeded, "all", data.Window())
        sliced = page.body(db, seeded, "handwritten/high", data.Window())
    panels = [a.text for a in find_component(whole, "exp-metrics-graph").figure.layout.annotations]
    assert "converted" in panels and "correction_rate" in panels
    points = next(t for t, name in zip(find_component(whole, "exp-metrics-graph").figure.data,
                                       panels, strict=False) if name == "converted")
    assert list(points.y) == [pytest.approx(0.25), pytest.approx(0.5)]
    assert "units first seen in it" in find_component(whole, "exp-outcomes-note").children
    assert "exact_match" in panels  # read beside its sample: mostly corrections of wrong answers
    assert "not the arms' accuracy" in find_component(whole, "exp-truth-note").children
    panels = [a.text for a in find_component(sliced, "exp-metrics-graph").figure.layout.annotations]
    assert "converted" not in panels
    assert "cannot be split by slice" in find_component(sliced, "exp-outcomes-note").children
    assert find_component(whole, "exp-outcomes-waiting") is None
    services = dash_app.extensions["abvoc"]  # an outcome of a unit the service never served
    typo = events.make_event(events.OUTCOME_RECORDED, outcome_id="o-typo", metric="converted",
                             experiment_id=seeded, value=1.0, observed_at=T0.isoformat(),
                             unit_id="u-never-served")
    assert flow(services.db, services.bus, [typo], services.settings.topic_prefix) == 1
    with dash_app.test_request_context("/dashboard/experiments"):
        waiting = find_component(page.body(db, seeded, "all", data.Window()),
                                 "exp-outcomes-waiting").children
    assert "converted 1;" in waiting and T0.isoformat()[:16] in waiting, waiting


def test_a_metric_of_one_value_over_its_reporting_units_is_named(dash_app: Flask,
                                                                 seeded: int) -> None:
    """Only purchases sent, and counted over the units that sent them: 1.0 in every arm, which
    the page says, with the definition that counts every exposed unit."""
    services = dash_app.extensions["abvoc"]
    define_metric(services.db, seeded, {"name": "bought", "kind": "proportion",
                                        "direction": "higher"})
    batch = [events.make_event(events.OUTCOME_RECORDED, outcome_id=f"b-{arm}-{i}",
                               experiment_id=seeded, metric="bought", value=1.0,
                               observed_at=T0.isoformat(), unit_id=f"u-{arm}pr0-{i:03d}")
             for arm in ("c", "t") for i in range(3)]
    assert flow(services.db, services.bus, batch, services.settings.topic_prefix) == len(batch)
    with dash_app.test_request_context("/dashboard/experiments"):
        said = find_component(page.body(_db(dash_app), seeded, "all", data.Window()),
                              "exp-outcomes-one-value").children
    assert said.startswith("bought: every unit that reported 'bought'") and \
        '"missing": "zero"' in said, said


def test_an_empty_window_says_so_and_the_decision_is_the_whole_experiments(
        dash_app: Flask, seeded: int) -> None:
    db = _db(dash_app)
    with dash_app.test_request_context("/dashboard/experiments"):
        window = page.window_of(db, seeded, [1, 1])  # both handles on one hour
        assert window.since == window.until
        assert "An empty window" in page.describe(window)
        # Handles past either end (only a forged request sends them) are held to the range.
        for hours in ([-5, -3], [HOURS + 5, HOURS + 9]):
            outside = page.window_of(db, seeded, hours)
            assert outside.since == outside.until, hours
            assert "An empty window" in page.describe(outside)
        empty = page.body(db, seeded, "all", window)
        one_hour = page.body(db, seeded, "all", page.window_of(db, seeded, [1, 2]))
        whole = page.body(db, seeded, "all", data.Window())
    said = component_text(empty)
    assert "No data in this window" in said
    assert "no units have been assigned" not in said and find_component(empty, "exp-arms") is None
    assert find_component(one_hour, "exp-no-data") is None
    # The decision box is the whole experiment's, and says so, whatever the window.
    whole_decision = component_text(find_component(whole, "exp-decision"))
    assert component_text(find_component(empty, "exp-decision")) == whole_decision
    assert component_text(find_component(one_hour, "exp-decision")) == whole_decision
    assert "For the whole experiment" in whole_decision


def test_the_page_says_which_metrics_were_tested_per_unit(
        dash_app: Flask, seeded: int, monkeypatch: pytest.MonkeyPatch) -> None:
    db = _db(dash_app)
    exp = add_experiment(db, name="per-unit", scope="per-unit")
    batch, _ = clustered(seed=4, units=10, experiment_id=exp)
    later = prediction("pu-late", experiment_id=exp, unit_id="control-0",
                       at=T0 + timedelta(hours=1))
    apply(db, [*batch, later])
    with dash_app.test_request_context("/dashboard/experiments"):
        per_unit = page.body(db, exp, "all", data.Window())
        one_each = page.body(db, seeded, "all", data.Window())
    said = find_component(per_unit, "exp-analysis-unit").children
    assert said.startswith("Tested per unit") and "correction_rate" in said
    assert find_component(one_each, "exp-analysis-unit") is None
    # The always-valid series counts predictions at every look, and says so beside the table.
    assert "narrower than correction_rate's per-unit ones" in find_component(
        per_unit, "exp-sequential-per-unit").children
    assert find_component(one_each, "exp-sequential-per-unit") is None
    # A window of a few predictions is tested per unit too, its units recounted; one past the
    # page's limit counts predictions and says so.
    first_hour = data.Window(until=T0.replace(minute=0) + timedelta(hours=1))
    with dash_app.test_request_context("/dashboard/experiments"):
        windowed = page.body(db, exp, "all", first_hour)
    said = find_component(windowed, "exp-analysis-unit").children
    assert said.startswith("Tested per unit") and "correction_rate" in said
    assert data.results(db, exp, first_hour)["analysis_unit_note"] is None
    monkeypatch.setattr(unit_recount, "AUTO_RECOUNT_LIMIT", 10)
    counted = data.results(db, exp, first_hour)
    assert counted["analysis_unit"]["per_unit"] == []
    assert "count predictions as independent" in counted["analysis_unit_note"]


@pytest.mark.parametrize(("status", "head"), [
    ("draft", "Draft: not started, so there is nothing to decide yet"),
    ("running", "Decision: keep running"),
    ("killed", "Killed: the experiment serves only its control")])
def test_the_decisions_heading_says_what_the_experiment_is_doing(status: str, head: str) -> None:
    decision = {"action": "keep_running", "arm": None, "reasons": ["no traffic yet"]}
    shown = component_text(page._decision(decision, {"status": status}))
    assert shown.startswith(head), shown


def test_the_time_slider_of_an_experiment_without_traffic_says_so(dash_app: Flask) -> None:
    """Its bare ends read "0" and "1", as if they were hours."""
    db = _db(dash_app)
    idle = add_experiment(db, name="idle", scope="idle")
    for experiment in (idle, None):
        *_, hours, span, marks = page.controls(db, experiment)
        assert (hours, span, marks) == (1, [0, 1], {0: "no traffic yet", 1: ""})
