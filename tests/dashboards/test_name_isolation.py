"""A U+202E (right-to-left override) in a user-chosen name cannot reverse the page's own text
around it: names in components sit in ``<bdi>``, names in option labels and sentences between
U+2068 and U+2069 (first-strong isolate … pop isolate)."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import update

from core.store.models import Experiment
from dashboards import data
from dashboards.pages import experiments
from dashboards.picker import experiment_picker
from tests.evaluation.helpers import add_experiment
from tests.support.dash_tree import find_component

EVIL = "exp \u202eevil"
FSI, PDI = "\u2068", "\u2069"


def _bdis(node: object) -> list[object]:
    """Every <bdi> below ``node``."""
    found = [node] if type(node).__name__ == "Bdi" else []
    children = getattr(node, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str):
            found += _bdis(child)
    return found


def test_picker_labels_isolate_the_name_from_the_status(dash_app: Flask) -> None:
    db = dash_app.extensions["abvoc"].db
    exp = add_experiment(db, name=EVIL)
    with dash_app.test_request_context("/dashboard/experiments"):
        picker = experiment_picker("exp-select")
    dropdown = picker.children[1]
    assert dropdown.options == [{"label": f"#{exp} {FSI}{EVIL}{PDI} (running)", "value": exp}]


def test_the_summary_isolates_the_name_from_its_sentence(dash_app: Flask) -> None:
    db = dash_app.extensions["abvoc"].db
    exp = add_experiment(db, name=EVIL, arms=[
        {"name": "ctl \u202e1", "candidate": "cand-a", "weight": 0.5, "control": True},
        {"name": "t", "candidate": "cand-b", "weight": 0.5, "control": False}])
    with db.session() as s:
        s.execute(update(Experiment).where(Experiment.id == exp).values(
            allocation={"since": "2026-11-20T12:00:00+00:00"}))
    page = experiments.body(db, exp, "all", data.Window())
    summary = find_component(page, "exp-summary")
    assert [b.children for b in _bdis(summary)] == [EVIL]
    line = str(find_component(page, "exp-srm").children)
    assert f"{FSI}ctl \u202e1{PDI} 0" in line  # an arm's name in a sentence, isolated
