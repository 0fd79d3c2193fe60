"""The Experiments page plots each arm's figures on the matching metrics its answers are judged
by: exact match (accuracy) for a label candidate but no token edit distance, both for text."""

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
