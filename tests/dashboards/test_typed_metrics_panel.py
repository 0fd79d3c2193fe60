"""The pages follow what a candidate answers and what its counts can show: the Experiments page
plots exact match (accuracy) for a label arm but no token edit distance, both for text; the
Offline-vs-online page marks no class shifted on too few answers, and says why."""

from __future__ import annotations

import pytest

from core.store.db import Database
from tests.evaluation.test_typed_comparisons import load_typed
from tests.support.dash_tree import find_component


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("types", "shown_match"), [
    (("label", "label"), {"exact_match"}),
    (("text", "text"), {"exact_match", "token_edit_distance"}),
])
def test_the_metrics_panel_follows_the_output_type(
        db: Database, types: tuple[str, str], shown_match: set[str]) -> None:
    from dashboards import data
    from dashboards.pages import experiments

    exp = load_typed(db, types)
    page = experiments.body(db, exp, "all", data.Window())
    figure = find_component(page, "exp-metrics-graph").figure
    shown = {title.text for title in figure.layout.annotations}
    assert shown & {"exact_match", "token_edit_distance"} == shown_match, shown
    assert {"correction_rate", "latency_ms"} <= shown


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_offline_vs_online_page_says_why_a_small_shift_is_not_judged(db: Database) -> None:
    """Four answers per arm, half of a class the offline labels hold 2 % of: too few online
    counts for the chi-square test (Koehler and Larntz's rule), so no class is marked shifted
    and the page says why under the table."""
    from core.store.models import Candidate
    from dashboards.pages import divergence
    from evaluation.divergence import divergence_with_stages

    exp = load_typed(db, ("label", "label"), per_arm=4)
    with db.session() as s:
        for row in s.query(Candidate):
            row.offline_results = {"overall": {"n": 600, "exact_match": 0.9},
                                   "label_shares": {"yes": 0.02, "no": 0.98}}
    with db.reading() as s:
        report = divergence_with_stages(s, exp)
    shift = report["prediction_shift"][0]["offline_labels"]
    assert not shift["shifted"] and shift["note"].startswith("too few online counts")
    page = divergence.body(report)
    rows = _rows(find_component(page, "div-shift-table"))
    assert len(rows) == 4 and {row[-1] for row in rows} == {"no"}  # two arms: none shifted
    assert "too few online counts for the chi-square test" in str(page)


def _rows(table) -> list[list[str]]:  # noqa: ANN001 - a Dash html.Table (dashboards.tables)
    return [[str(cell.children) for cell in tr.children] for tr in table.children[1].children]
