"""A verified label is the truth only of answers of the output type it was given in: a label
experiment's class name on an input is not the truth of a number candidate's answer to the same
input in another experiment (it used to be counted wrong), nor does it conflict with a number
label of that input. Checked on the results, the audited accuracy and the unit analysis,
through the worker's real aggregates."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from core import events, receipts
from core.store.db import Database
from core.store.models import Candidate, RelabelItem
from evaluation.results import experiment_results
from tests.evaluation.helpers import SECRET, T0, add_experiment, apply, correction, prediction
from tests.evaluation.test_truth_rules import _label

FLOWERS = [{"name": "control", "candidate": "cand-a", "weight": 0.5, "control": True},
           {"name": "treatment", "candidate": "cand-b", "weight": 0.5, "control": False}]
NUMBERS = [{"name": "control", "candidate": "num-a", "weight": 0.5, "control": True},
           {"name": "treatment", "candidate": "num-b", "weight": 0.5, "control": False}]


def _typed(pid: str, output: Any, kind: str, experiment_id: int, candidate: str, unit: str,
           input_hash: str) -> dict[str, Any]:
    event = prediction(pid, experiment_id=experiment_id, arm="control", candidate=candidate,
                       unit_id=unit, slice_="all", confidence=None)
    event.update(output=output, output_type=kind, input_hash=input_hash)
    return events.validate_event(event)


def _number_correction(pid: str, truth: float) -> dict[str, Any]:
    event = events.make_event(events.CORRECTION_SUBMITTED, correction_id=uuid.uuid4().hex,
                              prediction_id=pid, corrected_output=truth, output_type="number",
                              receipt=receipts.sign(SECRET, pid))
    event["occurred_at"] = T0.isoformat()
    return event


def _done_item(db: Database, queue: str, pid: str, input_hash: str, label: str,
               experiment_id: int | None, candidate: str | None,
               reasons: list[str]) -> None:
    with db.session() as s:
        s.add(RelabelItem(queue=queue, prediction_id=pid, input_hash=input_hash,
                          experiment_id=experiment_id, candidate=candidate, reasons=reasons,
                          status="done", label=label, labeled_at=T0, annotator="admin",
                          created_at=T0))


def test_a_label_is_the_truth_of_answers_of_its_own_output_type_only(db: Database) -> None:
    flowers = add_experiment(db, name="flowers", scope="flowers", arms=FLOWERS)
    numbers = add_experiment(db, name="numbers", scope="numbers", arms=NUMBERS)
    with db.session() as s:
        s.add(Candidate(name="num-a", version="1", pipeline={"output": {"type": "number"}},
                        created_at=T0, updated_at=T0))
    # Eight inputs, answered by a label candidate (experiment `flowers`: input hash = its
    # prediction id) and by a number candidate (experiment `numbers`), two requests per unit.
    hashes = [f"in{i}" for i in range(8)]
    batch = [_typed(h, "setosa", "label", flowers, "cand-a", f"f{i // 2}", h)
             for i, h in enumerate(hashes)]
    batch += [_typed(f"n-{h}", 2.0, "number", numbers, "num-a", f"n{i // 2}", h)
              for i, h in enumerate(hashes)]
    apply(db, batch)
    # Customers correct two label answers and three number answers (in2 to 2.0: confirmed).
    apply(db, [correction("in0", "virginica"), correction("in1", "setosa"),
               _number_correction("n-in0", 3.0), _number_correction("n-in1", 1.0),
               _number_correction("n-in2", 2.0)])
    # Annotators label the flowers' inputs in0, in1, in3 and in4 as class names.
    for h in ("in0", "in1", "in3", "in4"):
        _label(db, h, "versicolor")
    # The number answer to in4 is audited as 5.0 (no conflict with in4's class name), and an
    # imported image of input in5, for num-a, is labeled 2.0 (its type: num-a's).
    _done_item(db, "offline-test", "n-in4", "in4", "5.0", numbers, "num-a", ["audit"])
    _done_item(db, "training", "import:in5", "in5", "2.0", None, "num-a", ["imported"])
    with db.session() as s:
        num = experiment_results(s, numbers)
        flo = experiment_results(s, flowers)

    figures = num["metrics"]["control"]["all"]
    # Truths: n-in0 3.0 (|2-3| = 1), n-in1 1.0 (1), n-in2 2.0 (right), n-in4 5.0 (3), n-in5 2.0.
    assert figures["truth_known"] == 5
    assert figures["known_wrong"] == 3
    assert figures["accuracy_bound"] == pytest.approx(1 - 3 / 8)
    assert figures["corrections"] == 3
    assert figures["mae"] == pytest.approx((1 + 1 + 0 + 3 + 0) / 5)
    audit = num["online_accuracy"]["variants"]["control"]["slices"]["all"]["audit"]
    assert (audit["n"], audit["correct"]) == (1, 0)
    assert num["online_accuracy"]["conflicts"] == 0
    assert num["analysis_unit"]["per_prediction"] == {}
    assert num["analysis_unit_note"] is None

    figures = flo["metrics"]["control"]["all"]
    # Truths: in0, in1, in3, in4 versicolor (all wrong); the number labels are none of theirs.
    assert figures["truth_known"] == 4 and figures["known_wrong"] == 4
    assert figures["accuracy_bound"] == pytest.approx(1 - 4 / 8)
    assert flo["online_accuracy"]["conflicts"] == 0
    labeled = flo["online_accuracy"]["variants"]["control"]["slices"]["all"]["labeled"]
    assert (labeled["n"], labeled["correct"]) == (4, 0)
    assert flo["analysis_unit"]["per_prediction"] == {}


def test_a_label_changes_nothing_of_a_failed_prediction(db: Database) -> None:
    exp = add_experiment(db)
    batch = [prediction(f"p{i}", unit_id=f"u{i // 2}", slice_="all", output="setosa")
             for i in range(4)]
    failed = prediction("p4", unit_id="u2", slice_="all", output="", error="boom")
    failed["input_hash"] = "p0"  # the same input as p0, which annotators label
    apply(db, [*batch, failed])
    _label(db, "p0", "virginica")
    with db.session() as s:
        res = experiment_results(s, exp)
    figures = res["metrics"]["control"]["all"]
    # p0 is known wrong; p4 failed, which the bound counts once, as an error.
    assert (figures["truth_known"], figures["known_wrong"], figures["errors"]) == (1, 1, 1)
    assert figures["accuracy_bound"] == pytest.approx(1 - 2 / 5)
    assert res["analysis_unit"]["per_prediction"] == {}
