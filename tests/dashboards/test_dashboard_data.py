"""The Experiments page's data: the evaluation results for a slice and a time window, each
arm's intervals, and the always-valid interval over time; the callbacks' plain functions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from statsmodels.stats.proportion import proportion_confint

from dashboards import data
from dashboards.pages import experiments as page
from evaluation.online import hour_window
from tests.dashboards.conftest import HOURS, PER_HOUR, SLICES
from tests.evaluation.helpers import T0


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
