"""A number candidate on the Offline-vs-online page and in the weekly report: its online MAE
against its offline MAE, never an exact match or an accuracy bound, which mean nothing for
numbers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure

from core.store.db import Database
from dashboards.pages import divergence
from dashboards.report import plots, render
from evaluation.divergence import divergence_with_stages
from evaluation.weekly import weekly_data
from tests.evaluation.test_typed_comparisons import load_numbers
from tests.support.dash_tree import find_component

WEEK = "2026-W47"  # holds T0, when load_numbers' traffic comes


def _numbers(db: Database) -> tuple[int, float, np.ndarray]:
    """Two number arms; cand-a (control) has an offline MAE of 0.4 on 50 answers."""
    row = {"n": 50, "mae": 0.4, "rmse": 0.5}
    offline = {"output_type": "number", "overall": row, "slices": {}}
    exp, control, _ = load_numbers(db, primary="absolute_error", offline=offline)
    return exp, 0.4, control


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_page_shows_the_mae_gap_of_a_number_candidate(db: Database) -> None:
    exp, offline_mae, control = _numbers(db)
    with db.reading() as s:
        report = divergence_with_stages(s, exp)
    figure = divergence.plots.gap_heatmap(report["slices"])
    assert figure.data, "the heatmap says no candidate has offline results and traffic"
    (heat,) = figure.data
    assert list(heat.y) == ["cand-a"] and list(heat.x) == ["all"]
    assert heat.z[0][0] == pytest.approx(control.mean() / offline_mae - 1)
    assert "online MAE" in heat.text[0][0] and "exact" not in heat.text[0][0]
    drill = divergence.drill(db, exp, report, "all")
    mae = find_component(drill, "div-drill-mae-table")
    assert mae is not None and "cand-a" in str(mae) and f"{control.mean():.4g}" in str(mae)
    # No accuracy bound for them: the label table is left out, not shown empty.
    assert find_component(drill, "div-drill-table") is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_weekly_report_charts_the_mae_and_the_primary_metric(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    exp, offline_mae, control = _numbers(db)
    charts: list[dict[str, Any]] = []

    def capture(fig: Figure) -> str:
        ax = fig.axes[0]
        charts.append({"title": ax.get_title(), "names": [t.get_text() for t in
                                                          ax.get_yticklabels()],
                       "bars": [p.get_width() for p in ax.patches]})
        return "data:image/svg+xml;base64,"

    monkeypatch.setattr(plots, "_uri", capture)
    with db.reading() as s:
        data = weekly_data(s, WEEK)
    render.build_plots(data)
    mae = [c for c in charts if "MAE" in c["title"]]
    assert mae and mae[0]["names"][0] == "cand-a · all"
    assert pytest.approx(control.mean()) in mae[0]["bars"] and offline_mae in mae[0]["bars"]
    assert not any("accuracy" in c["title"] for c in charts)  # no accuracy for numbers
    primary = next(c for c in charts if c["title"].startswith("primary metric"))
    assert "absolute_error" in primary["title"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_experiments_page_plots_a_number_arm_s_errors_not_its_matches(db: Database) -> None:
    from dashboards import data
    from dashboards.pages import experiments

    exp, _, _ = _numbers(db)
    page = experiments.body(db, exp, "all", data.Window())
    figure = find_component(page, "exp-metrics-graph").figure
    shown = {title.text for title in figure.layout.annotations}
    assert "absolute_error" in shown and "squared_error" in shown
    assert not shown & {"exact_match", "token_edit_distance"}, shown
