"""The Offline-vs-online, VOC, Inspector and Operations pages' data and page functions, on a
store the worker filled (SQLite and PostgreSQL), without a browser."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from dash import html
from flask import Flask

from core.health import Heartbeat
from core.store.db import utcnow
from core.store.relabel_models import PredictionInput
from dashboards import feeds
from dashboards import operations as ops
from dashboards.pages import divergence, inspector, voc
from dashboards.pages import operations as operations_page
from dashboards.tables import answer_text
from serving.images import encode_png
from tests.dashboards.conftest import HOURS, PER_HOUR, SLICES
from tests.dashboards.pages_seed import HOSTILE, OCR_ID, OUTCOME_METRIC, seed_pages
from tests.dashboards.test_dashboard_auth import ORIGIN, _token, login
from tests.evaluation.helpers import T0
from tests.support.dash_tree import component_text, find_component


@pytest.fixture
def pages_seeded(dash_app: Flask) -> int:
    return seed_pages(dash_app)


@pytest.fixture
def db(dash_app: Flask) -> Iterator:  # noqa: ANN201
    yield dash_app.extensions["abvoc"].db


def test_divergence_heatmap_and_drill_down(dash_app: Flask, pages_seeded: int, db) -> None:  # noqa: ANN001
    report = feeds.divergence(db, pages_seeded)
    hand = next(r for r in report["slices"]
                if r["candidate"] == "cand-a" and r["slice"] == "handwritten/high")
    corrected = round(SLICES["handwritten/high"][0] * PER_HOUR) * HOURS + 1
    n = HOURS * PER_HOUR + 1
    assert hand["online"]["n"] == n
    assert hand["gap"] == pytest.approx(1 - corrected / n - 0.85)
    figure = divergence.plots.gap_heatmap(report["slices"])
    heat = figure.data[0]
    assert list(heat.y) == ["cand-a", "cand-b"] and list(heat.x)[0] == "all"
    assert heat.customdata[0][list(heat.x).index("handwritten/high")] == "handwritten/high"
    with dash_app.test_request_context("/dashboard/divergence"):
        whole = str(divergence.drill(db, pages_seeded, report, "all"))
        hand_text = str(divergence.drill(db, pages_seeded, report, "handwritten/high"))
        assert whole != hand_text and "Slice handwritten/high." in hand_text
        assert OCR_ID in hand_text  # the newest prediction in the slice, linked
        # its wrong symbol (3 for 2) blamed on the recognizer, in the slice and overall
        stages = component_text(find_component(divergence.drill(
            db, pages_seeded, report, "handwritten/high"), "div-drill-stages"))
        assert "recognizer" in stages and "1 (100%)" in stages
        assert "recognizer" in component_text(find_component(divergence.drill(
            db, pages_seeded, report, "all"), "div-drill-stages"))
        assert "div-confusion-0" in hand_text  # label candidates: their confusion counts
        assert "printed/middle" not in hand_text.split("div-drill-predictions")[1]
        page = str(divergence.body(report))
        assert "accuracy gap" in page  # cand-a's handwriting is flagged
        bars = find_component(divergence.body(report), "div-stages").figure.data
        assert [b.name for b in bars] == ["extraction", "detector", "recognizer", "aligner",
                                          "converter"]
        assert list(next(b for b in bars if b.name == "recognizer").x) == [1.0]
        assert report["findings"] and report["findings"][0]["rank"] == 1


def test_divergence_before_traffic_or_offline_results_says_what_is_missing(
        dash_app: Flask, db) -> None:  # noqa: ANN001
    """It said "No finding: online results are within tolerance of the offline test" and
    "No candidate answers classes" with nothing served and nothing tested offline."""
    from tests.evaluation.helpers import add_experiment, apply, prediction

    idle = add_experiment(db, name="idle", scope="idle")
    with dash_app.test_request_context("/dashboard/divergence"):
        page = component_text(divergence.body(feeds.divergence(db, idle)))
    assert "No finding yet: no candidate has served traffic yet" in page
    assert "No traffic yet: the predicted classes' shift shows" in page
    assert "within tolerance" not in page and "No candidate answers classes" not in page
    assert "No candidate of this experiment records its stages" in page
    served = add_experiment(db, name="served", scope="served")
    apply(db, [prediction(f"s{i}", experiment_id=served) for i in range(3)])
    with dash_app.test_request_context("/dashboard/divergence"):
        page = component_text(divergence.body(feeds.divergence(db, served)))
    assert "No finding yet: no candidate has offline results yet" in page


def test_voc_feed_is_newest_first_searchable_and_paged(pages_seeded: int, db) -> None:  # noqa: ANN001
    everything = feeds.feed(db)
    corrections = sum(round(r[0] * PER_HOUR) + round(r[1] * PER_HOUR)
                      for r in SLICES.values()) * HOURS + 1
    assert everything.total == corrections + 3
    times = [r["at"] for r in everything.rows]
    assert times == sorted(times, reverse=True)
    assert everything.rows[0]["kind"] == "outcome" and everything.rows[0]["value"] == 2.0
    found = feeds.feed(db, "SCRIPT>window")  # any case, tags as plain text
    assert found.total == 1 and found.rows[0]["comment"] == HOSTILE
    assert found.rows[0]["output"] == "x^{3}" and found.rows[0]["report"] == "x^{2}"
    assert feeds.feed(db, "100%").total == 0  # % is a character, not a wildcard
    assert feeds.feed(db, OUTCOME_METRIC, ("outcome",)).total == 3
    assert feeds.feed(db, kinds=("outcome",)).total == 3
    page2 = feeds.feed(db, page=2, size=10)
    assert page2.page == 2 and page2.rows[0] == feeds.feed(db, size=11).rows[10]
    assert feeds.feed(db, page=999).page == everything.pages


def test_inspector_shows_stages_and_blames_a_stage(dash_app: Flask, pages_seeded: int,
                                                   db) -> None:  # noqa: ANN001
    found = feeds.prediction(db, OCR_ID)
    assert found is not None and found["recorded"]
    assert found["truth"] == "x^{2}" and found["blamed"] == "recognizer"  # a 3 for a 2
    assert found["corrections"][0]["comment"] == HOSTILE
    assert feeds.prediction(db, "nope") is None
    ledger = feeds.prediction(db, "led-3")
    assert ledger is not None and not ledger["recorded"] and ledger["candidate"] == "cand-b"
    with dash_app.test_request_context("/dashboard/inspector"):
        text = str(inspector.body(found, OCR_ID))
        for part in ("insp-boxes", "insp-recognizer", "insp-aligner", "insp-converter",
                     "stage blamed: recognizer"):
            assert part in text
        other = feeds.prediction(db, "cpr0-000")
        shown = str(inspector.body(other, "cpr0-000"))
        assert "insp-stages" in shown and "The input is not kept" in shown
        assert "insp-missing" in str(inspector.body(None, "nope"))
    boxes = inspector.plots.detections(found["stages"])
    assert len(boxes.layout.shapes) == 2 and not boxes.layout.images
    # While serving keeps the input, the boxes are drawn on the image itself.
    assert found["input"] is None
    with db.session() as s:
        s.add(PredictionInput(prediction_id=OCR_ID, input_hash=found["input_hash"] or "h",
                              kind="image", data=encode_png(np.full((20, 40), 255, np.uint8)),
                              created_at=utcnow()))
    kept = feeds.prediction(db, OCR_ID)["input"]
    # Another candidate's kept input is shown as it was sent (here V2 tensors).
    other = feeds.prediction(db, "cpr0-000")
    with db.session() as s:
        s.add(PredictionInput(prediction_id="cpr0-000", input_hash=other["input_hash"] or "h2",
                              kind="tensors", created_at=utcnow(), data=json.dumps(
                                  [{"name": "petals", "shape": [2], "datatype": "FP32",
                                    "data": [0.25, 4.5]}]).encode()))
    with dash_app.test_request_context("/dashboard/inspector"):
        shown = find_component(inspector.body(feeds.prediction(db, "cpr0-000"), "cpr0-000"),
                      "insp-input")
    assert isinstance(shown, html.Pre) and '"petals"' in shown.children
    drawn = inspector.plots.detections(found["stages"], *inspector._image(kept))
    assert len(drawn.layout.images) == 1 and len(drawn.layout.shapes) == 2
    assert tuple(drawn.layout.xaxis.range) == (0, 40) and tuple(drawn.layout.yaxis.range) == (20, 0)


def test_operations_series_ledger_guardrails_and_health(pages_seeded: int, db) -> None:  # noqa: ANN001
    rows = ops.hourly(db, None)
    assert {r["candidate"] for r in rows} == {"cand-a", "cand-b"}
    first = next(r for r in rows if r["candidate"] == "cand-b")
    assert first["predictions"] == PER_HOUR * len(SLICES)
    # The first hour's rate is over its part from the first prediction (T0, a quarter past).
    served_s = 3600 - T0.minute * 60
    assert first["requests_per_s"] == pytest.approx(PER_HOUR * len(SLICES) / served_s)
    assert first["error_rate"] == 0.0
    assert 10.0 <= first["latency_p50_ms"] <= first["latency_p99_ms"] <= 16.2
    assert len(ops.hourly(db, 1)) == 2  # the newest hour only, per candidate
    assert ops.hourly(db, None, "cand-a")[0]["candidate"] == "cand-a"
    recent = {r["candidate"]: r for r in ops.recent(db)}
    assert recent["cand-a"]["requests"] == 20 and recent["cand-a"]["error_rate"] == 0.2
    # cand-a's newest row is a second older than cand-b's: filtered to it, its window still
    # ends where the page's does, so its figures do not change with the filter.
    assert ops.recent(db, candidate="cand-a") == [recent["cand-a"]]
    events = ops.guardrail_events(db)
    assert [e["status"] for e in events] == ["arm paused"]  # not again as "running"
    health = ops.pipeline_health(db)
    assert health["outbox_pending"] == 0
    assert health["checks"]["worker"].startswith("not beating: no heartbeat for")
    assert health["heartbeats"][0]["last_error"] == "<b>boom</b>"
    # An instance that stopped cleanly leaves no heartbeat row, where its old beat would read
    # as dead; its recorded stop lets the verdict say "stopped", not "never started".
    Heartbeat(db, "relay", instance="host-2").beat()
    Heartbeat(db, "relay", instance="host-2").forget()
    assert [b["instance"] for b in ops.pipeline_health(db)["heartbeats"]] == ["host-1"]
    assert "relay" not in ops.pipeline_health(db)["checks"]
    assert ops.pipeline_health(db, ("relay",))["checks"]["relay"].startswith("down: stopped")
    Heartbeat(db, "relay", instance="host-3").clear_stale()  # a new one starts: stop forgotten
    # A part the deployment runs (ABVOC_EXPECT_PARTS) but that never beat: down here too, as
    # /readyz says, not left off the page.
    checks = ops.pipeline_health(db, ("relay", "worker"))["checks"]
    assert checks["relay"].startswith("down: no instance has written a heartbeat yet")
    # The same verdict; its age may have ticked a second since `health` was read.
    assert re.sub(r"\d+s ", "Ns ", checks["worker"]) == re.sub(r"\d+s ", "Ns ",
                                                              health["checks"]["worker"])
    assert "relay: down: no instance" in str(operations_page.health(db, ("relay",)))
    # A worker reading another topic prefix than this deployment's: as /readyz says it.
    Heartbeat(db, "worker", instance="typo", topic_prefix="abvocx",
              consumer_group="evaluation").beat()
    shown = str(operations_page.health(db, (), "abvoc"))
    assert "worker: wrong topics: its live instances read topics prefixed" in shown


def _call(client, outputs: list[str], inputs: list[tuple[str, object]],  # noqa: ANN001
          state: tuple[tuple[str, object], ...] = ()) -> Any:
    """A Dash callback request as the renderer sends it."""
    body = {"output": ".." + "...".join(outputs) + "..",
            "state": [{"id": k.split(".")[0], "property": k.split(".")[1], "value": v}
                      for k, v in state],
            "outputs": [dict(zip(("id", "property"), o.split("."), strict=True))
                        for o in outputs],
            "inputs": [{"id": k.split(".")[0], "property": k.split(".")[1], "value": v}
                       for k, v in inputs],
            "changedPropIds": [inputs[0][0]]}
    if len(outputs) == 1:
        body["output"] = outputs[0]
        body["outputs"] = body["outputs"][0]
    return client.post("/dashboard/_dash-update-component", json=body,
                       headers={**ORIGIN, "X-CSRFToken": _token(client)})


def test_page_callbacks_answer_and_refuse_bad_input(dash_app: Flask, pages_seeded: int,
                                                    admin_key: str) -> None:
    client = dash_app.test_client()
    login(client, admin_key, "/dashboard/voc")
    ok = _call(client, ["ops-traffic.children"], [("ops-candidate.value", "cand-a"),
                                                  ("ops-span.value", "all")])
    assert ok.status_code == 200 and "ops-recent" in ok.get_data(as_text=True)
    bad = _call(client, ["ops-traffic.children"], [("ops-candidate.value", "cand-a"),
                                                   ("ops-span.value", ["24"])])
    assert bad.status_code == 400 and "'hours' must be one of" in bad.get_json()["error"]
    search = [("voc-search.value", 5), ("voc-kinds.value", ["correction"]),
              ("voc-prev.n_clicks", None), ("voc-next.n_clicks", None)]
    answer = _call(client, ["voc-body.children", "voc-count.children", "voc-page.data"], search,
                   [("voc-page.data", 1)])
    assert answer.status_code == 400 and "'search' must be text" in answer.get_json()["error"]
    search[0] = ("voc-search.value", "x")
    search[1] = ("voc-kinds.value", ["everything"])
    answer = _call(client, ["voc-body.children", "voc-count.children", "voc-page.data"], search,
                   [("voc-page.data", 1)])
    assert answer.status_code == 400 and "'kinds' must be" in answer.get_json()["error"]
    long_id = _call(client, ["insp-body.children"], [("insp-id.value", "x" * 65),
                                                     ("insp-go.n_clicks", None)])
    # Said on the page, not a 400 the browser keeps to itself (a link's id is not cut).
    assert long_id.status_code == 200 and "65 characters long, and a prediction id is at most 64" \
        in long_id.get_data(as_text=True)
    drill = _call(client, ["div-drill.children"], [("div-slice.value", 3),
                                                   ("div-select.value", pages_seeded)])
    assert drill.status_code == 400 and "'slice' must be text" in drill.get_json()["error"]


def test_the_empty_text_is_shown_in_words() -> None:
    """A truth that the input holds no text reads as such, not as an empty cell or as none."""
    assert (answer_text(None), answer_text(""), answer_text("a cat")) == \
        ("–", "(no text)", "a cat")
    shown = component_text(inspector._blame({  # noqa: SLF001 - the part under test
        "truth": "", "labels": [{"label": "", "annotator": "ann:1", "queue": "verification"}],
        "blamed": None}))
    assert "Truth (from corrections): (no text)" in shown
    # The label and the queue it stands in, each isolated from the text around it (bidi).
    assert "\u2068(no text)\u2069 (\u2068ann:1\u2069, \u2068verification\u2069)" in shown
    assert "no stages to blame" in shown  # a truth is known
    assert voc._report({"kind": "correction", "report": ""}) == "(no text)"  # noqa: SLF001
