"""An outcome of a metric its experiment does not define, or of no experiment, is parked,
named, and applied by a replay once the metric is defined; its value is checked then.

Found by writing outcomes to the bus directly: the worker stored an undefined metric's
outcomes unchecked (the API refuses them), so a value of 1e300 waited in the unit values, and
once the metric was defined its results raised ("MeanStats sum of squares must be finite"), a
500 for the whole experiment; an outcome of an experiment that does not exist waited for good.
"""

from __future__ import annotations

from sqlalchemy import select

from core.bus.embedded import EmbeddedBus
from core.replay import replay_parked
from core.store.db import Database
from core.store.models import ParkedEvent
from evaluation.results import experiment_results
from evaluation.worker import make_worker
from tests.evaluation.helpers import SECRET, add_experiment, prediction
from tests.evaluation.test_outcomes_worker import apply, define, outcome, unit_rows

UNITS = 6


def test_undefined_metrics_are_parked_and_replayed_once_defined(db: Database) -> None:
    exp = add_experiment(db)
    apply(db, [prediction(f"p{i}", experiment_id=exp, arm=("control", "treatment")[i % 2],
                          unit_id=f"u{i}") for i in range(UNITS)])
    sent = [outcome("spend", float(i), unit=f"u{i}", exp=exp, oid=f"o{i}")
            for i in range(UNITS)]
    sent += [outcome("spend", 1e300, unit="u0", exp=exp, oid="huge"),
             outcome("spend", 1.0, unit="u0", exp=exp + 1000, oid="nowhere")]
    assert apply(db, sent) == 0
    with db.reading() as s:
        reasons = sorted(s.scalars(select(ParkedEvent.reason)))
    assert len(reasons) == UNITS + 2 and unit_rows(db) == {}
    assert sum(f"metric 'spend' is not defined on experiment {exp}" in r
               for r in reasons) == UNITS + 1
    assert sum(f"experiment {exp + 1000} does not exist" in r for r in reasons) == 1

    define(db, exp, "spend", "mean")
    worker = make_worker(db, EmbeddedBus(db), "t", secret=SECRET)
    out = replay_parked(db, worker)
    assert (out["applied"], out["still_parked"]) == (UNITS, 2)
    assert {unit for _, _, unit in unit_rows(db)} == {f"u{i}" for i in range(UNITS)}
    with db.reading() as s:
        left = sorted(s.scalars(select(ParkedEvent.reason)))
        results = experiment_results(s, exp)  # raised with the 1e300 counted
    assert len(left) == 2
    assert any("takes a finite number as 'value' (at most 2^53 in size)" in r for r in left)
    assert any(f"experiment {exp + 1000} does not exist" in r for r in left)
    assert set(results["outcomes"]) == {"spend"}
