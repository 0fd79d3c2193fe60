"""Over the real app: the relabel item view gives the served output and the correction as
values of the output type (a number as a number, JSON as its value), so an annotator can send the
correction back as the label; JSON strings survive the store; long text answers can be corrected
and labeled."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core import events, receipts
from core.outbox import add_event
from core.store.db import utcnow
from core.store.models import Correction, Prediction, RelabelItem, ServedPrediction
from tests.support.kept_inputs import keep_input
from tests.support.keys import bearer
from tests.support.v2 import drain

WORD_OR_SCORE = {"anyOf": [
    {"type": "object", "required": ["kind", "score"],
     "properties": {"kind": {"type": "string"}, "score": {"type": "number"}}},
    {"type": "string"}]}


def answered(app: Flask, candidate: str, output_type: str, output: Any,
             schema: dict[str, Any] | None = None) -> dict[str, str]:
    """A registered candidate of `output_type` and one of its answers, as serving records it
    (the ledger row, the kept input and a PredictionMade event); the prediction id and its
    receipt."""
    described: dict[str, Any] = {"type": output_type}
    if schema is not None:
        described["schema"] = schema
    app.extensions["abvoc_serving"].registry.register(
        candidate, "1", pipeline={"kind": "bundle", "output": described})
    services = app.extensions["abvoc"]
    pid = f"p-{candidate}"
    with services.db.session() as s:
        s.add(ServedPrediction(prediction_id=pid, candidate=candidate, version="1",
                               created_at=utcnow()))
        keep_input(s, pid, f"h-{candidate}")
        add_event(s, events.make_event(
            events.PREDICTION_MADE, prediction_id=pid, candidate=candidate,
            candidate_version="1", input_hash=f"h-{candidate}", output=output,
            output_type=output_type, unit_id="u1"), services.settings.topic_prefix)
    return {"prediction_id": pid, "receipt": receipts.sign("test-secret", pid)}


def corrected_and_claimed(app: Flask, client: FlaskClient, ids: dict[str, str],
                          corrected: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """Post the customer's correction, let the worker store it and queue the item, claim it."""
    response = client.post("/v1/corrections", headers=bearer(app, "correct"),
                           json={**ids, "corrected_output": corrected})
    assert response.status_code == 202, response.get_json()
    drain(app, 1)
    annotator = bearer(app, "annotate")
    claimed = client.post("/v1/relabel/claim", headers=annotator, json={}).get_json()["item"]
    assert claimed is not None and claimed["prediction_id"] == ids["prediction_id"]
    shown = client.get(f"/v1/relabel/items/{claimed['id']}", headers=annotator)
    assert shown.status_code == 200, shown.get_json()
    return annotator, shown.get_json()


def test_a_number_item_shows_numbers_and_takes_its_correction_back(
        v2app: Flask) -> None:
    client = v2app.test_client()
    ids = answered(v2app, "distance", "number", 16.0)
    annotator, item = corrected_and_claimed(v2app, client, ids, 16.093)
    assert item["output_type"] == "number"
    assert item["served"]["output"] == 16.0 and isinstance(item["served"]["output"], float)
    corrected = item["correction"]["corrected_output"]
    assert corrected == 16.093 and isinstance(corrected, float)
    labeled = client.post(f"/v1/relabel/items/{item['id']}/label", headers=annotator,
                          json={"label": corrected})
    assert labeled.status_code == 200, labeled.get_json()
    assert labeled.get_json()["verdict"] == "accept"  # the same value: it compares equal
    done = client.get(f"/v1/relabel/items/{item['id']}", headers=bearer(v2app, "admin"))
    assert done.get_json()["label"] == 16.093


def test_a_json_item_keeps_a_string_answer_a_string(v2app: Flask) -> None:
    client = v2app.test_client()
    ids = answered(v2app, "tagger", "json", "big", WORD_OR_SCORE)
    annotator, item = corrected_and_claimed(v2app, client, ids,
                                            {"kind": "a", "score": 2.0})
    assert item["served"]["output"] == "big"  # a JSON string, not text to parse
    assert item["correction"]["corrected_output"] == {"kind": "a", "score": 2}
    with v2app.extensions["abvoc"].db.reading() as s:
        assert s.get(Prediction, ids["prediction_id"]).output == '"big"'
        assert s.scalars(select(Correction.corrected_output)).one() == \
            '{"kind":"a","score":2}'
    labeled = client.post(f"/v1/relabel/items/{item['id']}/label", headers=annotator,
                          json={"label": {"score": 2, "kind": "a"}})
    assert labeled.status_code == 200, labeled.get_json()
    assert labeled.get_json()["verdict"] == "accept"


def test_a_long_text_answer_can_be_corrected_and_labeled(v2app: Flask) -> None:
    client = v2app.test_client()
    ids = answered(v2app, "writer", "text", "w " * 2500)
    long = "a fixed sentence. " * 167  # 3,006 characters: over the old 2,000
    annotator, item = corrected_and_claimed(v2app, client, ids, long)
    assert item["correction"]["corrected_output"] == long
    labeled = client.post(f"/v1/relabel/items/{item['id']}/label", headers=annotator,
                          json={"label": long + "and one more."})
    assert labeled.status_code == 200, labeled.get_json()
    with v2app.extensions["abvoc"].db.reading() as s:
        assert s.scalars(select(RelabelItem.label)).one() == long + "and one more."
    over = client.post("/v1/corrections", headers=bearer(v2app, "correct"),
                       json={**ids, "corrected_output": "x" * 10_001})
    assert over.status_code == 400 and "the limit is 10000" in over.get_json()["error"]


def test_the_annotate_page_shows_typed_answers() -> None:
    from dashboards.pages import annotate
    from tests.support.dash_tree import find_component

    item = {"id": 1, "queue": "training", "reasons": [], "priority": 1.0, "candidate": "t",
            "slice": "all", "lease": None, "classes": [], "stage_samples": [],
            "shadows": [{"candidate": "s", "output": "12"}],
            "served": {"output": "big"}, "correction": {"corrected_output": {"score": 2}}}
    view = annotate.view({**item, "output_type": "json"})
    assert find_component(view, "ann-served").children == '"big"'
    assert find_component(view, "ann-shadow-0").children == '"12"'
    assert find_component(view, "ann-correction").children == '{"score": 2}'
    editor = find_component(annotate.editor({**item, "output_type": "json"}),
                            {"type": annotate.LABEL, "kind": "json"})
    assert annotate.label_value("json", editor.value) == {"score": 2}
    number = {**item, "output_type": "number", "served": {"output": 16.0},
              "correction": {"corrected_output": 16.093}}
    assert find_component(annotate.view(number), "ann-served").children == "16.0"
    field = find_component(annotate.editor(number),
                           {"type": annotate.LABEL, "kind": "number"})
    assert field.value == 16.093


def test_a_failed_answer_is_null_and_says_it_failed(v2app: Flask) -> None:
    """The store keeps a failed answer as '': shown as such it read as an answer of the empty
    string, one an annotator could accept."""
    client = v2app.test_client()
    v2app.extensions["abvoc_serving"].registry.register(
        "reader", "1", pipeline={"kind": "bundle", "output": {"type": "text"}})
    services = v2app.extensions["abvoc"]
    pid = "p-reader"
    with services.db.session() as s:
        s.add(ServedPrediction(prediction_id=pid, candidate="reader", version="1",
                               created_at=utcnow()))
        keep_input(s, pid, "h-reader")
        add_event(s, events.make_event(
            events.PREDICTION_MADE, prediction_id=pid, candidate="reader",
            candidate_version="1", input_hash="h-reader", output="", output_type="text",
            error="RuntimeError: unsure", unit_id="u1"), services.settings.topic_prefix)
    ids = {"prediction_id": pid, "receipt": receipts.sign("test-secret", pid)}
    _, item = corrected_and_claimed(v2app, client, ids, "hello")
    assert item["served"]["output"] is None and item["served"]["failed"] is True
    with v2app.extensions["abvoc"].db.reading() as s:
        assert s.get(Prediction, pid).output == ""  # what the store keeps
    answered_ids = answered(v2app, "writer", "text", "")
    _, shown = corrected_and_claimed(v2app, client, answered_ids, "hi")
    assert shown["served"]["output"] == "" and shown["served"]["failed"] is False


def test_an_item_shows_a_later_disagreeing_correction(v2app: Flask) -> None:
    """The first correction is the truth until a label says otherwise; a second customer who
    disagreed was invisible to the annotator deciding between them."""
    client = v2app.test_client()
    ids = answered(v2app, "distance", "number", 16.0)
    first = client.post("/v1/corrections", headers=bearer(v2app, "correct"),
                        json={**ids, "corrected_output": 17.5, "comment": "it was 17.5"})
    assert first.status_code == 202, first.get_json()
    annotator, item = corrected_and_claimed(v2app, client, ids, 12.25)
    assert item["correction"]["corrected_output"] == 17.5
    assert item["later_corrections"] == [{"corrected_output": 12.25, "rating": None,
                                          "comment": None}]


def test_an_item_shows_another_customer_s_correction_of_the_same_input(v2app: Flask) -> None:
    """Two customers corrected the same input on two predictions: the item (one per input and
    queue) showed only its own prediction's corrections, though its label is the truth of both."""
    client = v2app.test_client()
    ids = answered(v2app, "distance", "number", 16.0)
    services = v2app.extensions["abvoc"]
    with services.db.session() as s:  # a second request with the same input, another unit
        s.add(ServedPrediction(prediction_id="p-again", candidate="distance", version="1",
                               created_at=utcnow()))
        add_event(s, events.make_event(
            events.PREDICTION_MADE, prediction_id="p-again", candidate="distance",
            candidate_version="1", input_hash="h-distance", output=16.0,
            output_type="number", unit_id="u2"), services.settings.topic_prefix)
    annotator, item = corrected_and_claimed(v2app, client, ids, 17.5)
    assert item["correction"]["corrected_output"] == 17.5 and item["other_corrections"] == []
    other = client.post("/v1/corrections", headers=bearer(v2app, "correct"), json={
        "prediction_id": "p-again", "receipt": receipts.sign("test-secret", "p-again"),
        "corrected_output": 12.25, "rating": 1, "comment": "far off"})
    assert other.status_code == 202, other.get_json()
    drain(v2app, 1)
    item = client.get(f"/v1/relabel/items/{item['id']}", headers=annotator).get_json()
    assert item["correction"]["corrected_output"] == 17.5 and item["later_corrections"] == []
    assert item["other_corrections"] == [{"prediction_id": "p-again", "corrected_output": 12.25,
                                          "rating": 1, "comment": "far off"}]
