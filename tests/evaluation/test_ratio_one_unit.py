"""A ratio metric with one unit per arm shows that unit and why nothing is tested, and one whose
denominator sums to zero still shows its units: never 'no observations' for an arm that has
some."""

from __future__ import annotations

import json
import uuid
from typing import Any

from core import events
from core.bus.base import Record
from core.store.db import Database
from core.stream import apply_records
from evaluation.metric_definitions import define_metric
from evaluation.results import experiment_results
from evaluation.worker import GROUP_ID, apply_events
from tests.evaluation.helpers import T0, add_experiment, prediction


def apply(db: Database, batch: list[dict[str, Any]]) -> None:
    """Through the stream's exactly-once path, as the worker applies a batch."""
    records = [Record("t", 0, i, events.route(e, "t").key, json.dumps(e).encode())
               for i, e in enumerate(batch)]
    apply_records(db, GROUP_ID, records, apply_events)


def _outcome(exp: int, unit: str, metric: str, value: float) -> dict[str, Any]:
    return events.make_event(events.OUTCOME_RECORDED, outcome_id=uuid.uuid4().hex,
                             experiment_id=exp, metric=metric, value=value,
                             observed_at=T0.isoformat(), unit_id=unit)


def _experiment(db: Database, units: dict[str, str], num: float, den: float) -> int:
    exp = add_experiment(db)
    for name in ("num", "den"):
        define_metric(db, exp, {"name": name, "kind": "mean", "direction": "higher",
                                "combine": "sum"})
    define_metric(db, exp, {"name": "rat", "kind": "ratio", "direction": "higher",
                            "numerator": "num", "denominator": "den"})
    batch = []
    for unit, arm in units.items():
        batch += [prediction(f"p-{unit}", experiment_id=exp, arm=arm, unit_id=unit),
                  _outcome(exp, unit, "num", num), _outcome(exp, unit, "den", den)]
    apply(db, batch)
    return exp


def _ratio(db: Database, exp: int) -> tuple[dict[str, Any], dict[str, Any]]:
    with db.session() as s:
        results = experiment_results(s, exp)
    rec = next(r for r in results["comparisons"] if r["metric"] == "rat")
    return results["outcomes"]["rat"]["arms"], rec


def test_one_unit_per_arm_is_counted_and_says_why_it_is_not_tested(db: Database) -> None:
    exp = _experiment(db, {"uc": "control", "ut": "treatment"}, 1.0, 2.0)
    arms, rec = _ratio(db, exp)
    for arm in ("control", "treatment"):
        assert arms[arm]["units"] == 1 and arms[arm]["mean"] == 0.5
        assert arms[arm]["error"] == "one unit: no variance to test with"
    assert (rec["n_control"], rec["n_treatment"]) == (1, 1)
    assert rec["error"] and "no observations" not in rec["error"]
    assert "two observations" in rec["error"]


def test_a_zero_denominator_still_shows_the_arms_units(db: Database) -> None:
    exp = _experiment(db, {"c1": "control", "c2": "control", "t1": "treatment",
                           "t2": "treatment"}, 1.0, 0.0)
    arms, _ = _ratio(db, exp)
    assert arms["control"]["units"] == 2
    assert arms["control"]["error"] == "the denominator sums to zero"
