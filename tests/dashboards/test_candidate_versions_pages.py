"""Experiments, Relabeling, Operations, VOC and the Inspector name two versions of one
candidate as Offline vs online does ("iris v1"/"iris v2",
:func:`evaluation.candidate_facts.shown_names`), so two rows never read as one; a name with one
version stays plain."""

from __future__ import annotations

from datetime import timedelta

from core.store.db import Database
from core.store.models import ServedPrediction
from dashboards import data, feeds, relabeling
from dashboards import operations as ops
from dashboards.pages import experiments, inspector, voc
from dashboards.pages import operations as ops_page
from tests.evaluation.helpers import T0, add_experiment, apply, prediction
from tests.evaluation.test_two_versions import N, seed
from tests.support.dash_tree import find_component


def _cells(table: object, column: int) -> list[str]:
    body = table.children[1].children  # type: ignore[attr-defined]
    return [row.children[column].children for row in body]


def test_experiments_and_relabeling_name_each_version(db: Database) -> None:
    exp = seed(db)
    res = data.results(db, exp)
    arms = find_component(experiments._arms(res, "all", data.experiment(db, exp)), "exp-arms")
    assert _cells(arms, 1) == ["iris v1", "iris v2"]
    rows = relabeling.accuracy_rows(data.results(db, exp, per_unit=False))
    assert {(r[0], r[1]) for r in rows} == {("control", "iris v1"), ("treatment", "iris v2")}


def test_one_version_per_name_stays_plain(db: Database) -> None:
    exp = add_experiment(db)
    apply(db, [prediction(f"p{i}", experiment_id=exp, arm=arm, candidate=cand)
               for i, (arm, cand) in enumerate((("control", "cand-a"),
                                                ("treatment", "cand-b")))])
    res = data.results(db, exp)
    arms = find_component(experiments._arms(res, "all", data.experiment(db, exp)), "exp-arms")
    assert _cells(arms, 1) == ["cand-a", "cand-b"]
    assert ops.candidates(db) == ["cand-a", "cand-b"]


def test_operations_rows_and_filter_keep_the_versions_apart(db: Database) -> None:
    exp = seed(db)
    with db.session() as s:
        s.add_all([ServedPrediction(prediction_id=f"led-{i}", experiment_id=exp,
                                    candidate="iris", version="2" if i % 2 else "1",
                                    arm="treatment" if i % 2 else "control",
                                    created_at=T0 + timedelta(seconds=i), latency_ms=5.0,
                                    error=False) for i in range(10)])
    assert ops.candidates(db) == ["iris v1", "iris v2"]
    hourly = ops.hourly(db, None)
    assert {r["candidate"]: r["predictions"] for r in hourly} == {"iris v1": N, "iris v2": N}
    assert [r["candidate"] for r in ops.hourly(db, None, "iris v2")] == ["iris v2"]
    recent = {r["candidate"]: r["requests"] for r in ops.recent(db)}
    assert recent == {"iris v1": 5, "iris v2": 5}
    assert [r["candidate"] for r in ops.recent(db, candidate="iris v1")] == ["iris v1"]
    shown = ops_page.traffic(db, "iris v2", None)
    assert _cells(find_component(shown, "ops-recent"), 0) == ["iris v2"]


def test_traffic_now_of_an_experiment_that_serves_nobody_says_none(db: Database) -> None:
    """A draft or stopped experiment showed its set-up's 50 % / 50 % as "traffic now"."""
    from sqlalchemy import update

    from core.store.models import Experiment

    exp = add_experiment(db)
    for status, shown in (("running", ["50%", "50%"]), ("draft", ["none (draft)"] * 2),
                          ("stopped", ["none (stopped)"] * 2)):
        with db.session() as s:
            s.execute(update(Experiment).where(Experiment.id == exp).values(status=status))
        res = data.results(db, exp)
        arms = find_component(experiments._arms(res, "all", data.experiment(db, exp)),
                              "exp-arms")
        assert _cells(arms, 4) == shown, status


def test_voc_and_the_inspector_name_each_version(db: Database) -> None:
    """Both read "iris" for iris v1 and iris v2."""
    seed(db)
    rows = find_component(voc.rows_table(feeds.feed(db, size=200)), "voc-table")
    assert sorted(set(_cells(rows, 4))) == ["iris v1", "iris v2"]
    for pid, shown in (("control-000", "iris v1"), ("treatment-000", "iris v2")):
        page = inspector.body(feeds.prediction(db, pid), pid)
        assert _cells(find_component(page, "insp-summary"), 1) == [shown]


def test_voc_search_for_a_shown_name_finds_that_versions_rows(db: Database) -> None:
    """Searching "iris v2", the name VOC shows, found nothing: the search read the name only."""
    seed(db)
    for query, wrong in (("iris v2", 80), ("IRIS V1", 10), ("iris", 90), ("iris v3", 0)):
        found = feeds.feed(db, query, size=200)
        assert found.total == wrong, query
    assert {r["shown_candidate"] for r in feeds.feed(db, "iris v2", size=200).rows} == {
        "iris v2"}
    paged = feeds.feed(db, "iris v2", page=2, size=25)
    assert (paged.page, paged.pages, len(paged.rows)) == (2, 4, 25)
