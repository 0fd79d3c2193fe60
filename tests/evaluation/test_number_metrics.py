"""A `number` candidate's corrections feed absolute and squared error, reported per arm as MAE
and RMSE with intervals; truths of other types (and v2 corrections, typeless) do not."""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest

from core import events, receipts
from core.store.db import Database
from evaluation.results import experiment_results
from tests.evaluation.helpers import SECRET, T0, add_experiment, aggregate_totals, apply, prediction


def number_prediction(pid: str, value: float, arm: str = "control") -> dict[str, Any]:
    event = prediction(pid, arm=arm, candidate="cand-a" if arm == "control" else "cand-b",
                       confidence=None)
    event.update(output=value, output_type="number")
    return events.validate_event(event)


def number_correction(pid: str, truth: Any, output_type: str | None = "number") -> dict[str, Any]:
    typed = {"output_type": output_type} if output_type else {}
    event = events.make_event(events.CORRECTION_SUBMITTED, correction_id=uuid.uuid4().hex,
                              prediction_id=pid, corrected_output=truth,
                              receipt=receipts.sign(SECRET, pid), **typed)
    event["occurred_at"] = T0.isoformat()
    return event


def test_number_truths_give_mae_and_rmse_with_intervals(db: Database) -> None:
    exp = add_experiment(db)
    answers = [2.0, 4.0, 7.5, 1.0]
    truths = [3, 4, 5.5, 1]  # errors 1, 0, 2, 0 (3 == 3.0: an exact match too)
    batch = [number_prediction(f"p{i}", v) for i, v in enumerate(answers)]
    batch += [number_prediction("t0", 10.0, "treatment")]
    apply(db, batch)
    apply(db, [number_correction(f"p{i}", t) for i, t in enumerate(truths)]
          + [number_correction("t0", "12", output_type="text")])  # not a number: no error
    totals = aggregate_totals(db, exp)
    assert totals["absolute_error"] == 4 and totals["absolute_error.sum"] == pytest.approx(3.0)
    assert totals["squared_error.sum"] == pytest.approx(5.0)
    assert totals["exact_match.sum"] == 2
    with db.session() as s:
        results = experiment_results(s, exp)
    control = results["metrics"]["control"]["all"]
    assert control["numbers_corrected"] == 4
    assert control["mae"] == pytest.approx(0.75)
    assert control["rmse"] == pytest.approx(math.sqrt(5 / 4))
    sd = math.sqrt(((1 - .75) ** 2 + .75 ** 2 + 1.25 ** 2 + .75 ** 2) / 3)
    low, high = control["mae_interval"]
    assert high == pytest.approx(0.75 + 1.959964 * sd / 2, rel=1e-5)
    assert low == 0.0  # clipped: an error is never negative
    assert control["rmse_interval"][0] <= control["rmse"] <= control["rmse_interval"][1]
    assert "mae" not in results["metrics"]["treatment"]["all"]
