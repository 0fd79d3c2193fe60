"""The Experiments page's arms in a time window count the units each arm served in the window,
as the API's results do: they showed the sample-ratio check's count, the units *first seen* in
the window (0 here, where every unit came back from an earlier hour), beside the window's
predictions. And the Inspector's "no prediction" sentence isolates the id it echoes."""

from __future__ import annotations

from datetime import timedelta

from dash import html

from core.store.db import Database
from dashboards import data
from dashboards.pages import experiments, inspector
from tests.evaluation.helpers import T0, add_experiment, apply, prediction
from tests.support.dash_tree import find_component


def test_a_windows_arms_count_the_units_served_in_it(db: Database) -> None:
    exp = add_experiment(db)
    apply(db, [prediction(f"{arm[0]}{u}-{h}", experiment_id=exp, arm=arm, candidate=cand,
                          unit_id=f"{arm}-{u}", at=T0 + timedelta(hours=h))
               for h in (0, 1) for u in range(6)
               for arm, cand in (("control", "cand-a"), ("treatment", "cand-b"))])
    later = data.Window(since=T0 + timedelta(hours=1))
    res = data.results(db, exp, later)
    assert res["metrics"]["control"]["all"]["units"] == 6
    assert res["srm"]["units"]["control"] == 0  # first seen in the window: none
    arms = find_component(experiments._arms(res, "all", data.experiment(db, exp)), "exp-arms")
    rows = arms.children[1].children
    assert [(r.children[0].children, r.children[5].children, r.children[7].children)
            for r in rows] == [("control", "6", "6"), ("treatment", "6", "6")]


def test_the_inspector_isolates_an_id_it_cannot_find() -> None:
    """A U+202E in the id reversed the page's own words: "No prediction .erots eht ni cba"."""
    said = find_component(inspector.body(None, "\u202eabc"), "insp-missing")
    assert isinstance(said.children[1], html.Bdi) and said.children[1].children == "\u202eabc"
