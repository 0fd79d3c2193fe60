"""Corrections carry an output of the candidate's type: a label from its classes, a finite
number, JSON its schema accepts, LaTeX that parses. Anything else is a 400 that says why and
stores nothing; a valid label correction of a /v2 prediction reaches the worker's tables."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from core import receipts
from core.store.db import utcnow
from core.store.models import (
    Correction,
    CorrectionRequest,
    OutboxEvent,
    PredictionTruth,
    ServedPrediction,
)
from tests.evaluation.helpers import aggregate_totals
from tests.support.bundles import EXAMPLE
from tests.support.keys import bearer
from tests.support.v2 import CLASSES, drain, flowers, infer_body, output_of, upload

POINT = {"type": "object", "required": ["x", "y"], "additionalProperties": False,
         "properties": {"x": {"type": "number"}, "y": {"type": "number"}}}


def served(app: Flask, candidate: str, pipeline: dict[str, Any]) -> dict[str, str]:
    """A registered candidate and one prediction in the API's ledger (as serving writes it),
    with its receipt: all a correction is checked against."""
    app.extensions["abvoc_serving"].registry.register(candidate, "1", pipeline=pipeline)
    pid = f"p-{candidate}"
    with app.extensions["abvoc"].db.session() as s:
        s.add(ServedPrediction(prediction_id=pid, candidate=candidate, created_at=utcnow()))
    return {"prediction_id": pid, "receipt": receipts.sign("test-secret", pid)}


def stored(app: Flask) -> tuple[int, int]:
    with app.extensions["abvoc"].db.session() as s:
        return (s.scalar(select(func.count()).select_from(CorrectionRequest)) or 0,
                s.scalar(select(func.count()).select_from(OutboxEvent)) or 0)


def last_event(app: Flask) -> dict[str, Any]:
    with app.extensions["abvoc"].db.session() as s:
        payload = s.scalars(select(OutboxEvent.payload).order_by(OutboxEvent.id.desc())).first()
    return json.loads(payload)


CASES = [
    # candidate, its pipeline description, refused outputs (value, words in the error), accepted
    ("price", {"kind": "bundle", "output": {"type": "number"}},
     [(float("nan"), "finite"), ("3.5", "number"), (True, "number"), (None, "number")],
     3, 3.0),
    ("point", {"kind": "bundle", "output": {"type": "json", "schema": POINT}},
     [({"x": 1}, '"y" is a required property'), ({"x": 1, "y": "2"}, "at /y"), ([1, 2], "object")],
     {"y": 2, "x": 1.5}, {"x": 1.5, "y": 2}),
    ("ocr-like", {"detector": {}},
     [("\\frac{x}{", "braces"), (7, "string"), ("", "non-empty")], "\\frac{x}{2}", "\\frac{x}{2}"),
    ("flower", {"kind": "bundle", "output": {"type": "label", "classes": CLASSES}},
     [("rose", "not one of the candidate's classes"), (["setosa"], "string")],
     "virginica", "virginica"),
    ("caption", {"kind": "remote", "output": {"type": "text"}},
     [("x" * 10_001, "limit is 10000"), ({"t": "a"}, "string")], "a cat {", "a cat {"),
]


@pytest.mark.parametrize(("candidate", "pipeline", "refused", "accepted", "carried"), CASES,
                         ids=[c[0] for c in CASES])
def test_the_candidate_output_type_decides_what_a_correction_may_carry(
        v2app: Flask, candidate: str, pipeline: dict[str, Any], refused: list[tuple[Any, str]],
        accepted: Any, carried: Any) -> None:
    client = v2app.test_client()
    corrector = bearer(v2app, "correct")
    ids = served(v2app, candidate, pipeline)
    before = stored(v2app)
    for value, words in refused:
        response = client.post("/v1/corrections", headers=corrector,
                               json={**ids, "corrected_output": value})
        assert response.status_code == 400, (value, response.get_json())
        assert words in response.get_json()["error"], (value, response.get_json())
        assert "corrected_output" in response.get_json()["error"]
    assert stored(v2app) == before  # nothing partial stored
    ok = client.post("/v1/corrections", headers=corrector,
                     json={**ids, "corrected_output": accepted})
    assert ok.status_code == 202, ok.get_json()
    event = last_event(v2app)
    assert event["schema_version"] == 3 and event["event_type"] == "CorrectionSubmitted"
    assert event["corrected_output"] == carried and type(event["corrected_output"]) is type(carried)
    assert event["output_type"] == pipeline.get("output", {}).get("type", "latex")
    # The same correction written another way (3 and 3.0 are one number) is the same one.
    again = client.post("/v1/corrections", headers=corrector,
                        json={**ids, "corrected_output": carried})
    assert again.status_code == 202 and again.get_json()["duplicate"] is True, again.get_json()
    # An empty Idempotency-Key is a mistake said so, as on /v1/outcomes (not read as none).
    empty = client.post("/v1/corrections", headers={**corrector, "Idempotency-Key": ""},
                        json={**ids, "corrected_output": accepted})
    assert empty.status_code == 400 and "1 to 128" in empty.get_json()["error"]


def test_the_empty_text_is_a_text_truth_and_no_other_types(v2app: Flask) -> None:
    """A customer can say an input holds no text ("" for a text candidate); an empty label is
    no class and an empty formula no formula, so those stay 400s that store nothing."""
    client = v2app.test_client()
    corrector = bearer(v2app, "correct")
    refused = [("flower", {"kind": "bundle", "output": {"type": "label", "classes": CLASSES}},
                "non-empty"),
               ("ocr-like", {"detector": {}}, "non-empty")]
    for candidate, pipeline, words in refused:
        ids = served(v2app, candidate, pipeline)
        before = stored(v2app)
        answer = client.post("/v1/corrections", headers=corrector,
                             json={**ids, "corrected_output": ""})
        assert answer.status_code == 400 and words in answer.get_json()["error"], candidate
        assert stored(v2app) == before
    ids = served(v2app, "caption", {"kind": "remote", "output": {"type": "text"}})
    ok = client.post("/v1/corrections", headers=corrector, json={**ids, "corrected_output": ""})
    assert ok.status_code == 202, ok.get_json()
    event = last_event(v2app)
    assert event["corrected_output"] == "" and event["output_type"] == "text"
    not_text = client.post("/v1/corrections", headers=corrector,
                           json={**ids, "corrected_output": None})
    assert not_text.status_code == 400
    assert "must be a string: the candidate answers text" in not_text.get_json()["error"]


def test_receipt_is_checked_before_the_prediction_is_looked_up(v2app: Flask) -> None:
    client = v2app.test_client()
    corrector = bearer(v2app, "correct")
    forged = client.post("/v1/corrections", headers=corrector, json={
        "prediction_id": "nope", "receipt": "0" * 64, "corrected_output": 3})
    assert forged.status_code == 403
    unknown = client.post("/v1/corrections", headers=corrector, json={
        "prediction_id": "nope", "receipt": receipts.sign("test-secret", "nope"),
        "corrected_output": 3})
    assert unknown.status_code == 404
    missing = client.post("/v1/corrections", headers=corrector, json={
        "prediction_id": "nope", "receipt": receipts.sign("test-secret", "nope")})
    assert missing.status_code == 400 and "corrected_output" in missing.get_json()["error"]
    assert stored(v2app) == (0, 0)


def test_a_label_correction_of_a_v2_prediction_reaches_the_worker(v2app: Flask) -> None:
    client = v2app.test_client()
    admin, corrector = bearer(v2app, "admin"), bearer(v2app, "correct")
    upload(client, admin, EXAMPLE)
    answers = []
    for i, row in enumerate(flowers(4, seed=3)):
        response = client.post("/v2/models/default/infer", headers=admin,
                               json=infer_body(row[None], f"u{i}"))
        assert response.status_code == 200, response.get_json()
        answers.append((output_of(response.get_json()), response.get_json()["parameters"]))
    (label, first), (_, second) = answers[0], answers[1]
    ids = {"prediction_id": first["prediction_id"], "receipt": first["receipt"]}
    wrong = client.post("/v1/corrections", headers=corrector,
                        json={**ids, "corrected_output": "\\frac{x}{2}"})
    assert wrong.status_code == 400 and "classes" in wrong.get_json()["error"]
    other = next(c for c in CLASSES if c != label)
    assert client.post("/v1/corrections", headers=corrector,
                       json={**ids, "corrected_output": other}).status_code == 202
    assert client.post("/v1/corrections", headers=corrector, json={
        "prediction_id": second["prediction_id"], "receipt": second["receipt"],
        "corrected_output": answers[1][0]}).status_code == 202
    drain(v2app, 4)
    with v2app.extensions["abvoc"].db.session() as s:
        corrections = dict(s.execute(select(Correction.prediction_id,
                                            Correction.corrected_output)).all())
        truths = dict(s.execute(select(PredictionTruth.prediction_id,
                                       PredictionTruth.truth)).all())
    expected = {first["prediction_id"]: other, second["prediction_id"]: answers[1][0]}
    assert corrections == expected and truths == expected
    # A label bundle's answers are classes even though its pipeline has stages: output shares
    # and the changed class (McNemar's discordant counts) are kept.
    totals = aggregate_totals(v2app.extensions["abvoc"].db)
    assert sum(n for k, n in totals.items() if k.startswith("output:")) == 4
    assert totals[f"output:{label}"] >= 1
    assert totals[f"truth:{other}"] == 1 and totals[f"corrected_output:{label}"] == 1
    assert totals["exact_match"] == 2 and totals["exact_match.sum"] == 1


def test_a_correction_is_checked_against_the_version_that_served(v2app: Flask) -> None:
    # Version 1 answers iris classes; version 2, registered after, other ones. A prediction
    # served by version 1 (an experiment pinned it) takes version 1's classes, not the newest.
    registry = v2app.extensions["abvoc_serving"].registry
    for version, classes in (("1", CLASSES), ("2", ["alpha", "beta", "gamma"])):
        registry.register("pinned", version, pipeline={
            "kind": "bundle", "output": {"type": "label", "classes": classes}})
    with v2app.extensions["abvoc"].db.session() as s:
        s.add(ServedPrediction(prediction_id="p-pinned", candidate="pinned", version="1",
                               created_at=utcnow()))
    ids = {"prediction_id": "p-pinned", "receipt": receipts.sign("test-secret", "p-pinned")}
    client, corrector = v2app.test_client(), bearer(v2app, "correct")
    refused = client.post("/v1/corrections", headers=corrector,
                          json={**ids, "corrected_output": "gamma"})
    assert refused.status_code == 400 and "'setosa'" in refused.get_json()["error"]
    ok = client.post("/v1/corrections", headers=corrector,
                     json={**ids, "corrected_output": "virginica"})
    assert ok.status_code == 202, ok.get_json()


def test_a_later_correction_is_told_the_first_one_is_the_truth(v2app: Flask) -> None:
    client = v2app.test_client()
    admin, corrector = bearer(v2app, "admin"), bearer(v2app, "correct")
    upload(client, admin, EXAMPLE)
    response = client.post("/v2/models/default/infer", headers=admin,
                           json=infer_body(flowers(1, seed=5), "u1"))
    label, ids = output_of(response.get_json()), response.get_json()["parameters"]
    ids = {"prediction_id": ids["prediction_id"], "receipt": ids["receipt"]}
    first, second = (c for c in CLASSES if c != label)
    said = [client.post("/v1/corrections", headers=corrector,
                        json={**ids, "corrected_output": truth}).get_json()
            for truth in (first, second, first)]
    assert [(s["duplicate"], s.get("earlier_corrections")) for s in said] == [
        (False, 0), (False, 1), (True, 0)]  # a repeat says what the first was told
    drain(v2app, 1)
    with v2app.extensions["abvoc"].db.session() as s:
        truths = dict(s.execute(select(PredictionTruth.prediction_id,
                                       PredictionTruth.truth)).all())
    assert truths == {ids["prediction_id"]: first}


LONG = 5_000


@pytest.mark.parametrize(("candidate", "pipeline", "value", "words"), [
    ("flower", {"kind": "bundle", "output": {"type": "label", "classes": CLASSES}}, "r" * LONG,
     "is not one of the candidate's classes 'setosa', 'versicolor', 'virginica'"),
    ("price", {"kind": "bundle", "output": {"type": "number"}}, "9" * LONG,
     "'corrected_output' must be a finite JSON number"),
    ("point", {"kind": "bundle", "output": {"type": "json", "schema": POINT}},
     {"x": 1, "y": "z" * LONG}, "JSON Schema at /y: "),
], ids=["label", "number", "json"])
def test_a_long_refused_correction_is_not_echoed_whole(
        v2app: Flask, candidate: str, pipeline: dict[str, Any], value: Any, words: str) -> None:
    """A 5,000-character corrected output came back whole in the 400 (the exploratory pass):
    the body names the field, what to fix, and the value's start and size only."""
    ids = served(v2app, candidate, pipeline)
    response = v2app.test_client().post("/v1/corrections", headers=bearer(v2app, "correct"),
                                        json={**ids, "corrected_output": value})
    error = response.get_json()["error"]
    assert response.status_code == 400 and words in error, error[:300]
    assert "corrected_output" in error and "characters)" in error and len(error) < 500, error


def test_a_long_refused_label_is_not_echoed_whole(v2app: Flask) -> None:
    """The same on the annotators' label route: a 7,000-character label was echoed whole."""
    client, admin = v2app.test_client(), bearer(v2app, "admin")
    upload(client, admin, EXAMPLE)
    assert client.put("/v1/relabel/rules", headers=admin,
                      json={"audit_rate": 1.0}).status_code == 200
    assert client.post("/v2/models/default/infer", headers=admin,
                       json=infer_body(flowers(1)[0][None], "u1")).status_code == 200
    drain(v2app, 1)
    annotator = bearer(v2app, "annotate")
    item = client.post("/v1/relabel/claim", headers=annotator).get_json()["item"]
    response = client.post(f"/v1/relabel/items/{item['id']}/label", headers=annotator,
                           json={"label": "r" * 7_000})
    error = response.get_json()["error"]
    assert response.status_code == 400 and "'label'" in error, error[:300]
    assert "is not one of the candidate's classes" in error and "(7000 characters)" in error
    assert len(error) < 500, error
    unknown = client.post("/v1/corrections", headers=bearer(v2app, "correct"),
                          json={"x" * LONG: 1})
    assert unknown.status_code == 400 and "unknown field(s)" in unknown.get_json()["error"]
    assert len(unknown.get_json()["error"]) < 500


def test_minus_zero_is_the_same_number_correction_as_zero(v2app: Flask) -> None:
    """-0.0 is 0 (the store writes both as 0): a keyless correction repeating an accepted 0 or a
    point at (0, 0) with -0.0 inside is that correction again, not a second one."""
    client = v2app.test_client()
    corrector = bearer(v2app, "correct")
    for candidate, pipeline, zero, minus_zero in (
            ("price", CASES[0][1], 0, -0.0),
            ("point", CASES[1][1], {"x": 0.0, "y": 1.5}, {"x": -0.0, "y": 1.5})):
        ids = served(v2app, candidate, pipeline)
        first = client.post("/v1/corrections", headers=corrector,
                            json={**ids, "corrected_output": zero})
        assert first.status_code == 202, first.get_json()
        again = client.post("/v1/corrections", headers=corrector,
                            json={**ids, "corrected_output": minus_zero})
        assert again.get_json()["duplicate"] is True, candidate
        assert again.get_json()["correction_id"] == first.get_json()["correction_id"]
    assert stored(v2app)[0] == 2
