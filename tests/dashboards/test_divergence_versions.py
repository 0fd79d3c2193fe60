"""The Offline-vs-online page and the terminal and weekly renderings of the divergence report
name the version wherever an experiment runs two versions of one candidate name, so the two
never read (or plot) as one row."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from core.store.db import Database
from core.store.models import Candidate
from dashboards.pages import divergence
from dashboards.report import plots as report_plots
from evaluation.divergence import divergence_with_stages
from evaluation.stage_blame import stage_attribution
from tests.evaluation.test_two_versions import seed
from tests.support.dash_tree import component_text, find_component


def test_the_page_shows_each_version_as_its_own_row(db: Database) -> None:
    exp = seed(db)
    with db.reading() as s:
        report = divergence_with_stages(s, exp)
    heat = divergence.plots.gap_heatmap(report["slices"]).data[0]
    assert list(heat.y) == ["iris v1", "iris v2"] and list(heat.x) == ["all"]
    assert [round(row[0], 3) for row in heat.z] == [0.0, -0.3]  # each against its own offline
    page = str(divergence.body(report))
    assert "accuracy gap · iris v2 · all" in page and "iris v1: prediction distribution" in page
    shift = find_component(divergence.body(report), "div-shift-table")
    assert shift is not None and "iris v2" in str(shift)
    drill = divergence.drill(db, exp, report, "all")
    table = str(find_component(drill, "div-drill-table"))
    assert "iris v1" in table and "iris v2" in table
    assert "iris v2: answers (rows)" in str(drill)  # its own confusion counts


def test_a_version_alone_in_the_heatmap_and_the_newest_predictions_keep_their_version(
        db: Database) -> None:
    """Only iris v2 has offline results, so the heatmap has its row alone: it read "iris",
    named from its own cells; the newest predictions read "iris" for both versions."""
    exp = seed(db)
    with db.session() as s:
        s.execute(update(Candidate).where(Candidate.version == "1").values(offline_results=None))
    with db.reading() as s:
        report = divergence_with_stages(s, exp)
    heat = find_component(divergence.body(report), "div-heatmap").figure.data[0]
    assert list(heat.y) == ["iris v2"]
    recent = find_component(divergence.drill(db, exp, report, "all"), "div-drill-predictions")
    shown = {(component_text(tr.children[2]), component_text(tr.children[1]))
             for tr in recent.children[1].children}
    assert shown and shown <= {("control", "iris v1"), ("treatment", "iris v2")}, shown


def test_terminal_and_weekly_renderings_name_the_version(db: Database,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from app.commands.report_text import divergence_text

    exp = seed(db)
    with db.reading() as s:
        report = divergence_with_stages(s, exp)
        report["stage_attribution"] = stage_attribution(s, exp)
    text = divergence_text(report)
    assert "iris v1 " in text and "iris v2 " in text
    assert "  iris v2: 80 of 80 with a truth wrong" in text
    # The weekly report's chart: its rows' labels, read off the figure it would render.
    monkeypatch.setattr(report_plots, "_uri", lambda fig: [
        t.get_text() for t in fig.axes[0].get_yticklabels()])
    assert report_plots.offline_online(report["slices"], "t") == ["iris v1 · all", "iris v2 · all"]
