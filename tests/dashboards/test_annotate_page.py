"""The Annotate page without a browser: its plain functions on a real store (editors per output
type, refusals kept as messages, a lost lease, the LaTeX preview), and who may open it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from dash import dcc, html
from flask import Flask
from sqlalchemy import select, update

from app.auth import create_key
from core.store.db import utcnow
from core.store.models import RelabelItem, RelabelLabel
from dashboards.pages import annotate
from tests.dashboards.annotation_seed import CLASSES, QUEUE, seed_queue
from tests.dashboards.test_dashboard_auth import (
    EXPERIMENTS_BODY,
    ORIGIN,
    ROUTE,
    _callback,
    _token,
    login,
)
from tests.support.dash_tree import find_component

WHO = "tester:abcd1234"


def test_a_label_item_gets_a_class_picker_and_its_tensors_shown(dash_app: Flask) -> None:
    db = dash_app.extensions["abvoc"].db
    seed_queue(db)
    item, message, changed = annotate.step(db, WHO, "claim", "training", None, None, None)
    assert changed and item is not None and message == f"Claimed item #{item['id']}."
    assert item["output_type"] == "label" and item["classes"] == CLASSES
    picker = find_component(annotate.editor(item), {"type": annotate.LABEL, "kind": "label"})
    assert isinstance(picker, dcc.RadioItems)
    assert [o["value"] for o in picker.options] == CLASSES and picker.value == "dog"
    shown = find_component(annotate.view(item), "ann-input")
    assert isinstance(shown, html.Pre) and '"FP32"' in shown.children
    refused, message, changed = annotate.step(db, WHO, "submit", "training", item, "cow", None)
    assert refused == item and not changed and message.startswith("Not saved: ")
    assert "'label'" in message
    after, message, changed = annotate.step(db, WHO, "submit", "training", item, "cat", None)
    assert changed and after is None and "labeled (done)" in message
    assert "Nothing left" in message
    with db.reading() as s:
        done = s.scalars(select(RelabelItem).where(RelabelItem.queue == "training")).one()
        assert (done.status, done.label, done.annotator) == ("done", "cat", WHO)


def test_editors_fit_the_output_type() -> None:
    base = {"id": 1, "classes": [], "served": {"output": "4.5"}, "correction": None}
    for kind, cls in (("latex", dcc.Input), ("text", dcc.Input), ("number", dcc.Input),
                      ("json", dcc.Textarea)):
        field = find_component(annotate.editor({**base, "output_type": kind}),
                      {"type": annotate.LABEL, "kind": kind})
        assert isinstance(field, cls), kind
    number = find_component(annotate.editor({**base, "output_type": "number"}),
                   {"type": annotate.LABEL, "kind": "number"})
    assert number.type == "number" and number.value == 4.5
    assert annotate.label_value("json", '{"a": [1]}') == {"a": [1]}
    for kind, raw in (("json", "{nope"), ("text", ""), ("latex", None)):
        try:
            annotate.label_value(kind, raw)
        except Exception as exc:  # noqa: BLE001 - the message is what is checked
            assert "label" in str(exc)
        else:
            raise AssertionError(f"{kind} {raw!r} was accepted")


def test_a_text_item_can_be_labeled_as_holding_no_text() -> None:
    """An empty text field is a label not typed yet; the empty text is said with a tick."""
    item = {"id": 1, "classes": [], "served": {"output": ""}, "correction": None,
            "output_type": "text"}
    tick = find_component(annotate.editor(item), {"type": annotate.NO_TEXT, "kind": "text"})
    assert isinstance(tick, dcc.Checklist) and tick.value == ["yes"]  # it answered nothing
    assert find_component(annotate.editor({**item, "output_type": "latex"}),
                          {"type": annotate.NO_TEXT, "kind": "latex"}) is None
    assert annotate.label_value("text", "", no_text=True) == ""
    assert annotate.label_value("text", None, no_text=True) == ""
    for kind, raw, ticked, words in (("text", "", False, "tick 'the input holds no text'"),
                                     ("text", "a cat", True, "clear one"),
                                     ("latex", "", True, "only a text item")):
        try:
            annotate.label_value(kind, raw, no_text=ticked)
        except Exception as exc:  # noqa: BLE001 - the message is what is checked
            assert words in str(exc), (kind, raw, str(exc))
        else:
            raise AssertionError(f"{kind} {raw!r} was accepted")
    shown = find_component(annotate.view({**item, "queue": "verification", "reasons": [],
                                          "priority": 1.0, "candidate": "c", "slice": "all",
                                          "input": None}), "ann-served")
    assert shown.children == "(no text)"


def test_the_latex_preview_renders_or_says_why_not() -> None:
    good = annotate.preview("latex", "\\frac{1}{2}+x^{2}")
    assert isinstance(good, html.Img) and good.src.startswith("data:image/png;base64,iVBOR")
    bad = annotate.preview("latex", "\\frac{x")
    assert isinstance(bad, html.P) and "Not valid LaTeX" in bad.children
    assert "unknown command" in annotate.preview("latex", "\\evil{1}").children
    assert isinstance(annotate.preview("text", "x"), html.Div)


def test_a_lost_lease_is_a_message_and_the_item_goes_back(dash_app: Flask) -> None:
    db = dash_app.extensions["abvoc"].db
    seed_queue(db)
    item, _, _ = annotate.step(db, WHO, "claim", QUEUE, None, None, None)
    with db.session() as s:  # the lease runs out
        s.execute(update(RelabelItem).where(RelabelItem.id == item["id"]).values(
            lease_until=utcnow() - timedelta(seconds=1)))
    other, _, _ = annotate.step(db, "other:ffff0000", "claim", QUEUE, None, None, None)
    assert other["id"] == item["id"]  # the expired lease returned it
    kept, message, changed = annotate.step(db, WHO, "submit", QUEUE, item, "x^{2}", None)
    assert kept == item and not changed and "not leased to you" in message
    assert message.endswith("claim an item first with Claim next")
    _, message, _ = annotate.step(db, WHO, "flag", QUEUE, other, None, "blurred")
    assert "not leased to you" in message
    _, message, _ = annotate.step(db, "other:ffff0000", "flag", QUEUE, other, None, "  ")
    assert "'reason'" in message
    with db.reading() as s:
        assert s.scalars(select(RelabelLabel)).all() == []


def test_annotators_see_only_the_annotate_page(dash_app: Flask) -> None:
    db = dash_app.extensions["abvoc"].db
    client = dash_app.test_client()
    assert client.get("/dashboard/annotate").headers["Location"] == \
        "/dashboard/login?next=/dashboard/annotate"
    key = create_key(db, ["annotate"], name="ann")["key"]
    assert login(client, key, next_="/dashboard/").status_code == 303
    # parsed: Dash writes '/' as '\u002f' in its JSON
    layout = json.dumps(client.get("/dashboard/_dash-layout").get_json())
    assert "/dashboard/annotate" in layout and "/dashboard/experiments" not in layout
    token = _token(client)
    refused = _callback(client, **{"X-CSRFToken": token})
    assert "cannot see the Experiments page" in refused.get_data(as_text=True)
    home = dict(ROUTE, inputs=[{"id": "url", "property": "pathname", "value": "/dashboard/"}])
    routed = client.post("/dashboard/_dash-update-component", json=home,
                         headers={**ORIGIN, "X-CSRFToken": token})
    assert routed.status_code == 200 and "Claim next" in routed.get_data(as_text=True)
    answer = client.post("/dashboard/_dash-update-component", json=EXPERIMENTS_BODY,
                         headers={**ORIGIN, "X-CSRFToken": token})
    assert answer.status_code == 403 and "admin" in answer.get_json()["error"]


def test_every_correction_of_the_input_is_shown_with_what_its_customer_said() -> None:
    item = {"id": 4, "queue": "verification", "reasons": ["correction"], "priority": 1.0,
            "candidate": "distance", "slice": None, "output_type": "number", "lease": {},
            "input": None, "served": {"output": 16.0}, "shadows": [],
            "correction": {"corrected_output": 17.5, "rating": None, "comment": "17.5"},
            "later_corrections": [{"corrected_output": 18.0, "rating": 2, "comment": None}],
            "other_corrections": [{"prediction_id": "p-again", "corrected_output": 12.25,
                                   "rating": 1, "comment": "far off"}]}
    shown = annotate.view(item)
    assert find_component(shown, "ann-correction-note").children == "comment: 17.5"
    assert find_component(shown, "ann-correction-2-note").children == "rating 2"
    other = find_component(shown, "ann-other-correction-0")
    assert "12.25" in json.dumps(other.to_plotly_json(), default=str)
    assert find_component(shown, "ann-other-correction-0-note").children == \
        "rating 1; comment: far off"


def test_a_stage_item_shows_its_crops_relations_or_why_not() -> None:
    crop = {"kind": "crop", "symbol": 2, "label": "6", "predicted": "8", "reason": None,
            "sample": {}, "image": {"media_type": "image/png", "data_base64": "iVBORw0K"}}
    relations = {"kind": "relations", "symbol": -1, "label": "x^{2}", "predicted": None,
                 "reason": None, "sample": {"classes": ["x", "2"],
                                            "relations": [[-1, "start"], [0, "sup"]]}}
    whole = {"kind": "whole", "symbol": -1, "reason": "the input is no longer kept"}
    parts = annotate.stage_samples([crop, relations, whole])
    figure = find_component(html.Div(parts), "ann-crop-0")
    assert isinstance(figure, html.Figure)
    assert figure.children[0].src == "data:image/png;base64,iVBORw0K"
    assert figure.children[1].children == "symbol 2: read as 8, truth 6"
    assert (find_component(html.Div(parts), "ann-relations-1").children
            == "x: start of -1\n2: sup of 0")
    assert find_component(html.Div(parts), "ann-whole-2").children == "the input is no longer kept"
    assert annotate.stage_samples([]) == []


def _press(client: Any, button: str, item: Any) -> Any:
    """The Annotate page's button callback as the renderer sends it, holding ``item``."""
    outputs = [("ann-item", "data"), ("ann-view", "children"), ("ann-editor", "children"),
               ("ann-message", "children"), ("ann-reason", "value")]
    buttons = ("claim", "submit", "skip", "flag")
    body = {"output": ".." + "...".join(f"{i}.{p}" for i, p in outputs) + "..",
            "outputs": [{"id": i, "property": p} for i, p in outputs],
            "inputs": [{"id": f"ann-{b}", "property": "n_clicks", "value": 1 if b == button
                        else None} for b in buttons],
            "state": [{"id": "ann-queue", "property": "value", "value": QUEUE},
                      {"id": "ann-item", "property": "data", "value": item},
                      [], {"id": "ann-reason", "property": "value", "value": "unclear"}, []],
            "changedPropIds": [f"ann-{button}.n_clicks"]}
    return client.post("/dashboard/_dash-update-component", json=body,
                       headers={**ORIGIN, "X-CSRFToken": _token(client)})


def test_a_hand_made_held_item_is_refused(dash_app: Flask) -> None:
    """Only a hand-made request holds an item the page never claimed: a 400 that says so."""
    db = dash_app.extensions["abvoc"].db
    seed_queue(db)
    client = dash_app.test_client()
    login(client, create_key(db, ["annotate"], name="ann")["key"], next_="/dashboard/")
    for bad in ({"id": "abc", "output_type": "text"}, {"id": 1.5, "output_type": "text"},
                {"id": 1}, {"output_type": "text"}, ["id", 1]):
        answer = _press(client, "flag", bad)
        assert answer.status_code == 400, bad
        assert "held item" in answer.get_json()["error"], bad
    claimed = _press(client, "claim", None)
    assert claimed.status_code == 200 and "Claimed item #" in claimed.get_data(as_text=True)
