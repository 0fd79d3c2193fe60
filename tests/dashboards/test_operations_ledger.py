"""Operations' ledger table: a candidate whose requests in its minutes were all forced (QA)
requests showed its count beside an error rate and latencies of "–", with no word why."""

from __future__ import annotations

from datetime import timedelta

from core.store.db import Database
from core.store.models import ServedPrediction
from dashboards import operations as ops
from dashboards.pages import operations as operations_page
from dashboards.tables import isolate
from tests.evaluation.helpers import T0
from tests.support.dash_tree import component_text, find_component


def test_a_row_of_forced_requests_only_says_why_its_figures_are_missing(db: Database) -> None:
    with db.session() as s:
        # What the API writes: a routed request carries its latency and whether it failed; a
        # forced (QA) one neither, so the guardrails never count it.
        s.add_all([ServedPrediction(prediction_id=f"r{i}", experiment_id=1, candidate="cand-a",
                                    arm="control", created_at=T0 + timedelta(seconds=i),
                                    latency_ms=5.0, error=False) for i in range(3)])
        s.add(ServedPrediction(prediction_id="qa", experiment_id=1, candidate="cand-b",
                               arm="treatment", created_at=T0, excluded="forced"))
    rows = {r["candidate"]: r for r in ops.recent(db)}
    assert (rows["cand-b"]["requests"], rows["cand-b"]["watched"]) == (1, 0)
    assert rows["cand-b"]["error_rate"] is None and rows["cand-a"]["watched"] == 3
    said = component_text(find_component(operations_page.traffic(db, None, None),
                                         "ops-unwatched"))
    assert "count routed requests only" in said and "forced (QA) request" in said, said
    assert f"Not routed: {isolate('cand-b')}: 1 of 1." in said, said


def test_no_word_where_every_request_was_routed(db: Database) -> None:
    with db.session() as s:
        s.add(ServedPrediction(prediction_id="r", experiment_id=1, candidate="cand-a",
                               arm="control", created_at=T0, latency_ms=5.0, error=False))
    assert find_component(operations_page.traffic(db, None, None), "ops-unwatched") is None
