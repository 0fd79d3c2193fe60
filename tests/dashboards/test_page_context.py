"""Pages say where what they show comes from: the Experiments slice dropdown offers the slices
the results test (and says how many it left out), VOC names an outcome's experiment and unit,
Annotate says a claim returned the lease still held, the Inspector names the experiment and arm
of a request kept out of the split, and Operations says what each rate divides by."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import update

from app.auth import create_key
from core.events import canonical_json
from core.store.db import Database, utcnow
from core.store.models import Outcome, Prediction, RelabelItem, ServedPrediction
from dashboards import app as dashboard_app
from dashboards import data, feeds, plots
from dashboards.pages import annotate, experiments, inspector, voc
from dashboards.pages import operations as ops_page
from tests.dashboards.annotation_seed import seed_queue
from tests.dashboards.test_dashboard_auth import ORIGIN, _token, login
from tests.evaluation.helpers import T0, add_experiment, apply, prediction
from tests.support.dash_tree import find_component

UNIT = "<img src=x onerror=alert(3)>"


def test_the_slice_dropdown_offers_the_tested_slices_only(db: Database) -> None:
    exp = add_experiment(db)
    # 55 slices: the 50 with two predictions are tested, the 5 with one are left out.
    apply(db, [prediction(f"p{i:02d}-{k}", experiment_id=exp, slice_=f"s-{i:02d}")
               for i in range(55) for k in range(2 if i < 50 else 1)])
    options, *_ = experiments.controls(db, exp)
    assert options[:51] == ["all", *(f"s-{i:02d}" for i in range(50))]
    note = options[51]
    assert note["disabled"] and "5 quieter slices left out" in note["label"]
    assert len(options) == 52
    page = experiments.body(db, exp, "s-52", data.Window())
    said = find_component(page, "exp-slice-untested")
    assert said is not None and "outside the tested slices" in said.children
    assert find_component(page, "exp-metrics-graph") is None  # no figures the table lacks
    assert find_component(experiments.body(db, exp, "s-01", data.Window()),
                          "exp-slice-untested") is None


def test_voc_names_an_outcomes_experiment_and_unit(db: Database) -> None:
    exp = add_experiment(db)
    with db.session() as s:
        s.add(Outcome(outcome_id="o-1", event_id="e-o-1", experiment_id=exp, metric="revenue",
                      value=28.5, prediction_id=None, unit_id=UNIT, arm="control",
                      observed_at=T0, counted_at=None))
    page = feeds.feed(db, "onerror=alert(3)")
    assert page.total == 1
    cells = find_component(voc.rows_table(page), "voc-table").children[1].children[0].children
    where = cells[3].children
    assert where == f"#{exp} · unit \u2068{UNIT}\u2069"


def test_claim_next_says_the_lease_still_held(dash_app: Flask) -> None:
    db = dash_app.extensions["abvoc"].db
    seed_queue(db)
    who = "tester:abcd1234"
    held, message, _ = annotate.step(db, who, "claim", "verification", None, None, None)
    assert held is not None and message == f"Claimed item #{held['id']}."
    # The page forgot it (a reload): a claim from another queue returns the same lease.
    again, message, _ = annotate.step(db, who, "claim", "training", None, None, None)
    assert again is not None and again["id"] == held["id"]
    assert message == (f"You still hold item #{held['id']} (verification): label, skip or "
                       "flag it first.")
    _, message, _ = annotate.step(db, who, "claim", annotate.ANY, held, None, None)
    assert message.startswith(f"You still hold item #{held['id']}")


def test_a_claim_after_the_lease_ran_out_is_a_fresh_claim(dash_app: Flask) -> None:
    """The page was told the lease ran out; Claim next leases the item again, and says so
    rather than "You still hold item #N" (which read as the lost work being kept)."""
    db = dash_app.extensions["abvoc"].db
    seed_queue(db)
    who = "tester:abcd1234"
    held, _, _ = annotate.step(db, who, "claim", "verification", None, None, None)
    assert held is not None
    with db.session() as s:
        s.execute(update(RelabelItem).where(RelabelItem.id == held["id"]).values(
            lease_until=utcnow() - timedelta(seconds=1)))
    kept, message, _ = annotate.step(db, who, "submit", "verification", held, "x^{2}", None)
    assert kept == held and "ran out" in message
    again, message, _ = annotate.step(db, who, "claim", "verification", held, None, None)
    assert again is not None and again["id"] == held["id"]
    assert again["lease"]["until"] != held["lease"]["until"]
    assert message == f"Claimed item #{held['id']}."
    _, message, _ = annotate.step(db, who, "claim", "verification", again, None, None)
    assert message.startswith(f"You still hold item #{held['id']}")


def test_the_queue_counts_follow_each_action(dash_app: Flask) -> None:
    """The "(N open)" labels are recomputed whenever an action writes its message."""
    db = dash_app.extensions["abvoc"].db
    seed_queue(db)
    client = dash_app.test_client()
    key = create_key(db, ["annotate"], name="ann")
    login(client, key["key"], next_="/dashboard/")
    body = {"output": "ann-queue.options",
            "outputs": {"id": "ann-queue", "property": "options"},
            "inputs": [{"id": "ann-message", "property": "children", "value": "x"}],
            "changedPropIds": ["ann-message.children"]}

    def labels() -> list[str]:
        answer = client.post("/dashboard/_dash-update-component", json=body,
                             headers={**ORIGIN, "X-CSRFToken": _token(client)})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        options = answer.get_json()["response"]["ann-queue"]["options"]
        return [o["label"] for o in options]

    assert "verification (3 open)" in labels()
    annotate.step(db, "someone:else", "claim", "verification", None, None, None)
    assert "verification (2 open)" in labels()


def test_the_inspector_names_the_experiment_of_a_request_kept_out(db: Database) -> None:
    exp = add_experiment(db)
    # A forced-arm (QA) request: the worker records no experiment, the ledger where it went.
    apply(db, [prediction("qa-1", experiment_id=None, arm=None, candidate="cand-b")])
    with db.session() as s:
        s.add(ServedPrediction(prediction_id="qa-1", experiment_id=exp, candidate="cand-b",
                               arm="treatment", created_at=T0, latency_ms=None, error=None))
    found = feeds.prediction(db, "qa-1")
    page = inspector.body(found, "qa-1")
    row = find_component(page, "insp-summary").children[1].children[0].children
    assert [c.children for c in row[2:4]] == [f"{exp} (not counted)", "treatment"]
    said = find_component(page, "insp-excluded")
    assert said is not None and "not counted in the experiment's results" in said.children
    # A row from before the reason was recorded: the inspector lists what it may have been.
    assert "or a request served while the experiment was killed or paused" in said.children
    for reason, why in (("forced", "outside its split: an admin's forced-arm (QA) request."),
                        ("paused", "outside its split: served while the experiment was paused"),
                        ("killed", "outside its split: served after the experiment was killed")):
        with db.session() as s:
            s.get(ServedPrediction, "qa-1").excluded = reason
        said = find_component(inspector.body(feeds.prediction(db, "qa-1"), "qa-1"),
                              "insp-excluded").children
        assert why in said and "served before abvoc recorded" not in said, said


def test_the_inspector_says_a_prediction_failed(db: Database) -> None:
    """A failed prediction's output is empty: the page says the candidate failed (a blank
    output and '–' read as an empty answer, for a text candidate a real one)."""
    apply(db, [prediction("bad-1", error="ValueError: no", output=""),
               prediction("ok-1", output="")])
    page = inspector.body(feeds.prediction(db, "bad-1"), "bad-1")
    row = find_component(page, "insp-summary").children[1].children[0].children
    assert row[5].children == "failed: no answer"
    assert "failed to answer this request" in find_component(page, "insp-failed").children
    assert find_component(page, "insp-output").children == "(none: the candidate failed)"
    answered = inspector.body(feeds.prediction(db, "ok-1"), "ok-1")
    assert find_component(answered, "insp-failed") is None
    assert find_component(answered, "insp-output").children == ""


def test_the_inspector_indents_a_json_output(db: Database) -> None:
    """A page's boxes are stored as one line of JSON, which ran past the page's right edge and
    scrolled it sideways: the Inspector indents a JSON output, and its text wraps in the page."""
    boxes = [{"box": [36 + 10 * i, 48 + 60 * i, 400, 90 + 60 * i], "score": 0.9}
             for i in range(12)]
    page = prediction("page-1", stages={"extraction": {"formulas": 12, "sheet_scale": 1.0}})
    apply(db, [page | {"output": boxes, "output_type": "json"},
               prediction("plain-1", output="x^{2}")])
    with db.session() as s:  # as the store keeps it: one line
        assert s.get(Prediction, "page-1").output == canonical_json(boxes)
    shown = find_component(inspector.body(feeds.prediction(db, "page-1"), "page-1"),
                           "insp-output").children
    assert shown == json.dumps(boxes, indent=2) and max(map(len, shown.splitlines())) < 40
    assert find_component(inspector.body(feeds.prediction(db, "plain-1"), "plain-1"),
                          "insp-output").children == "x^{2}"
    assert "main pre{white-space:pre-wrap}" in dashboard_app._STYLE  # noqa: SLF001


def test_operations_says_what_each_rate_divides_by(db: Database) -> None:
    exp = add_experiment(db)
    apply(db, [prediction(f"p{i}", experiment_id=exp, at=T0 + timedelta(seconds=i))
               for i in range(4)])
    with db.session() as s:
        s.add(ServedPrediction(prediction_id="p0", experiment_id=exp, candidate="cand-a",
                               arm="control", created_at=T0, latency_ms=5.0, error=False))
    shown = ops_page.traffic(db, None, None)
    header = [th.children for th in
              find_component(shown, "ops-recent").children[0].children.children]
    assert header[2] == "requests / s (over its serving seconds here)"
    note = find_component(shown, "ops-rates-note").children
    assert "the seconds of that hour the service served" in note
    assert "from its own first request" in note
    # Two p99s for one candidate differed (4.0 and 5.09 ms) with nothing saying why.
    assert "each hour's latency histogram (within 1 %" in note and "exact over the" in note
    titles = [a.text for a in plots.operations(
        [{"candidate": "cand-a", "hour": T0, "predictions": 4, "requests_per_s": 1.0,
          "error_rate": 0.0, "latency_p50_ms": 1.0, "latency_p95_ms": 1.0,
          "latency_p99_ms": 1.0}]).layout.annotations]
    assert "requests / s (over the hour's served seconds)" in titles


@pytest.mark.parametrize("queue", ["verification", annotate.ANY])
def test_a_claim_after_a_reload_says_the_lease_still_held(dash_app: Flask, queue: str) -> None:
    """A reload forgets the held item; Claim next in its queue (or any) gives it back, with its
    lease as it was, and said "Claimed item #N", as if it were a fresh claim."""
    db = dash_app.extensions["abvoc"].db
    seed_queue(db)
    who = "tester:abcd1234"
    held, _, _ = annotate.step(db, who, "claim", "verification", None, None, None)
    assert held is not None
    again, message, changed = annotate.step(db, who, "claim", queue, None, None, None)
    assert again == held and changed  # the page shows it again
    assert message == (f"You still hold item #{held['id']} (verification): label, skip or "
                       "flag it first.")
