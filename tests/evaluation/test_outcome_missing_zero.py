"""``missing: zero`` in the results over a time window: n per arm is the units first seen in the
window, as the sample-ratio check counts them there; a ratio whose arm has exposed units but no
outcome says its denominator sums to zero; a definition stored before the field reads ``skip``;
and the note on a ``skip`` metric whose reporting units all have one value."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import update

from core import events
from core.store.db import Database
from core.store.outcome_models import ExperimentMetric
from evaluation.metric_definitions import define_metric, list_metrics
from evaluation.results import experiment_results
from tests.evaluation.helpers import T0, add_experiment, prediction
from tests.evaluation.test_ratio_one_unit import apply

LATER = T0 + timedelta(hours=3)


def _outcome(exp: int, unit: str, metric: str, value: float) -> dict[str, Any]:
    return events.make_event(events.OUTCOME_RECORDED, outcome_id=uuid.uuid4().hex,
                             experiment_id=exp, metric=metric, value=value,
                             observed_at=LATER.isoformat(), unit_id=unit)


def _define(db: Database, exp: int, **body: Any) -> None:
    define_metric(db, exp, {"direction": "higher", **body})


def _feed(db: Database) -> tuple[int, dict[str, dict[str, float]]]:
    """Units first seen at T0 and three hours later in both arms; revenue from some of each;
    the late units' revenue (0 where none) per arm."""
    exp = add_experiment(db)
    _define(db, exp, name="revenue", kind="mean", combine="sum", missing="zero")
    _define(db, exp, name="visits", kind="mean", combine="sum")
    _define(db, exp, name="per_visit", kind="ratio", numerator="revenue",
            denominator="visits", missing="zero")
    batch, late = [], {"control": {}, "treatment": {}}
    for i in range(40):
        arm = "control" if i % 2 else "treatment"
        for when, at in (("early", T0), ("late", LATER)):
            unit = f"{when}-{i}"
            batch.append(prediction(f"p-{unit}", experiment_id=exp, arm=arm, unit_id=unit,
                                    at=at))
            value = float(i % 7) if i % 3 == 0 else 0.0
            if value:
                batch.append(_outcome(exp, unit, "revenue", value))
            if when == "late":
                late[arm][unit] = value
    apply(db, batch)
    return exp, late


def test_a_window_counts_the_units_first_seen_in_it(db: Database) -> None:
    exp, late = _feed(db)
    with db.session() as s:
        res = experiment_results(s, exp, since=LATER)
    arms = res["outcomes"]["revenue"]["arms"]
    for arm, values in late.items():
        expected = np.array(list(values.values()))
        assert arms[arm]["units"] == expected.size == res["srm"]["units"][arm] == 20
        assert arms[arm]["reported"] == int((expected > 0).sum())
        assert arms[arm]["mean"] == pytest.approx(expected.mean())
        assert arms[arm]["variance"] == pytest.approx(expected.var(ddof=1))
        # No unit sent visits: the denominator is 0 for every unit, so no ratio, but its
        # units are shown (those with revenue reported its numerator).
        ratio = res["outcomes"]["per_visit"]["arms"][arm]
        assert (ratio["units"], ratio["reported"]) == (20, arms[arm]["reported"])
        assert ratio["error"] == "the denominator sums to zero"
    with db.session() as s:
        whole = experiment_results(s, exp)
    assert {a: f["units"] for a, f in whole["outcomes"]["revenue"]["arms"].items()} \
        == {"control": 40, "treatment": 40}


def test_a_definition_stored_before_the_field_reads_skip(db: Database) -> None:
    exp = add_experiment(db)
    _define(db, exp, name="purchase", kind="proportion")
    with db.session() as s:
        s.execute(update(ExperimentMetric).values(missing=None))
    assert list_metrics(db, exp)[0]["missing"] == "skip"


@pytest.mark.parametrize(("values", "said"), [((1.0, 1.0, 1.0, 1.0), True),
                                              ((0.0, 0.0, 0.0, 0.0), True),
                                              ((1.0, 0.0, 1.0, 1.0), False)])
def test_a_skip_metric_of_one_value_in_every_arm_says_so(db: Database, values: tuple,
                                                         said: bool) -> None:
    exp = add_experiment(db)
    _define(db, exp, name="purchase", kind="proportion")
    _define(db, exp, name="paid", kind="proportion", missing="zero")
    batch = []
    for i, value in enumerate(values):
        unit = f"u{i}"
        batch += [prediction(f"p{i}", experiment_id=exp, unit_id=unit,
                             arm="control" if i % 2 else "treatment"),
                  _outcome(exp, unit, "purchase", value), _outcome(exp, unit, "paid", value)]
    apply(db, batch)
    with db.session() as s:
        outcomes = experiment_results(s, exp)["outcomes"]
    note = outcomes["purchase"]["note"]
    assert (note is not None) is said
    if said:
        assert f"has the value {values[0]:g}" in note and '"missing": "zero"' in note
    assert outcomes["paid"]["note"] is None
