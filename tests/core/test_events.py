"""Event schemas: producers refuse invalid events; the documented schema files are the truth."""

from __future__ import annotations

import json

import pytest

from core import events
from core.errors import EventSchemaError


def prediction(**overrides) -> dict:  # noqa: ANN003
    fields = {
        "prediction_id": "p-1",
        "candidate": "small-mixed",
        "input_hash": "ab12",
        "output": "x^{2}",
        "confidence": 0.9,
        "latency_ms": 12.5,
        "slice": "printed/middle",
    }
    fields.update(overrides)
    return events.make_event(events.PREDICTION_MADE, **fields)


def test_envelope_is_stamped() -> None:
    e = prediction()
    assert e["schema_version"] == 3 and e["event_type"] == "PredictionMade"
    assert len(e["event_id"]) == 32 and e["occurred_at"].endswith("+00:00")
    assert events.decode(events.encode(e)) == e


def test_two_events_never_share_an_id() -> None:
    assert prediction()["event_id"] != prediction()["event_id"]


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"confidence": 1.5}, "confidence"),
        ({"candidate": ""}, "candidate"),
        ({"output": 7}, "output"),
        ({"surprise": True}, "(root)"),
    ],
)
def test_producer_rejects_invalid_events(overrides: dict, where: str) -> None:
    with pytest.raises(EventSchemaError, match=where.replace("(", r"\(").replace(")", r"\)")):
        prediction(**overrides)


def test_missing_required_field_and_unknown_type() -> None:
    with pytest.raises(EventSchemaError, match="corrected_output"):
        events.make_event(events.CORRECTION_SUBMITTED, correction_id="c", prediction_id="p")
    with pytest.raises(EventSchemaError, match="unknown event_type"):
        events.validate_event({"event_type": "Nope"})


def test_decode_rejects_garbage() -> None:
    with pytest.raises(EventSchemaError, match="not JSON"):
        events.decode(b"\xff{")
    with pytest.raises(EventSchemaError, match="schema_version"):
        events.decode(json.dumps({"event_type": "PredictionMade", "schema_version": 9}).encode())


def test_routes_keep_a_predictions_events_together() -> None:
    p = prediction(prediction_id="same")
    c = events.make_event(
        events.CORRECTION_SUBMITTED,
        correction_id="c1",
        prediction_id="same",
        corrected_output="x^{3}",
    )
    assert events.route(p, "abvoc").key == events.route(c, "abvoc").key == "same"
    assert events.route(p, "abvoc").topic == "abvoc.predictions"
    assert events.topics("abvoc") == ["abvoc.predictions", "abvoc.corrections",
                                      "abvoc.outcomes"]


def test_outcome_events_route_by_prediction_else_unit_and_tie_to_exactly_one() -> None:
    base = {"outcome_id": "o1", "experiment_id": 1, "metric": "won", "value": 1.0,
            "observed_at": "2026-11-30T08:00:00+00:00"}
    by_unit = events.make_event(events.OUTCOME_RECORDED, unit_id="u1", **base)
    by_prediction = events.make_event(events.OUTCOME_RECORDED, prediction_id="p1",
                                      receipt="a" * 64, **base)
    assert events.route(by_unit, "x") == events.Route("x.outcomes", "u1")
    assert events.route(by_prediction, "x") == events.Route("x.outcomes", "p1")
    for bad in ({"unit_id": "u1", "prediction_id": "p1", "receipt": "a" * 64},
                {"prediction_id": "p1"}, {}, {"unit_id": "u1", "value": True}):
        with pytest.raises(EventSchemaError):
            events.make_event(events.OUTCOME_RECORDED, **{**base, **bad})


@pytest.mark.parametrize(("output_type", "output", "text"), [
    ("label", "setosa", "setosa"), ("number", 3.25, "3.25"), ("text", "hi", "hi"),
    ("json", {"b": [1, 2], "a": None}, '{"a":null,"b":[1,2]}'), ("latex", "x^{2}", "x^{2}")])
def test_v2_outputs_of_any_type_are_stored_as_text(output_type: str, output: object,
                                                   text: str) -> None:
    e = prediction(output=output, output_type=output_type)
    assert events.decode(events.encode(e))["output"] == output
    assert events.output_text(e) == text


def test_v1_prediction_events_are_still_read() -> None:
    old = {**prediction(), "schema_version": 1}
    assert events.decode(events.encode(old)) == old
    with pytest.raises(EventSchemaError, match="output"):  # v1 outputs are LaTeX text only
        events.validate_event({**old, "output": 3.0})
    with pytest.raises(EventSchemaError):
        events.validate_event({**prediction(), "output_type": "image"})
