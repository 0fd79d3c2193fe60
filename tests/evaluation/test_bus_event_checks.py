"""Events written to the bus by hand pass the API's checks in the worker: a time the store
cannot hold in UTC, an outcome dated where the API would refuse it, or a value its metric's
kind does not take is parked with its reason, before anything of it is stored; the rest of the
stream, and the experiment's results, go on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from core import events
from core.bus.embedded import EmbeddedBus
from core.store.db import Database
from core.store.models import Outcome, ParkedEvent, Prediction
from evaluation.metric_definitions import define_metric, list_metrics
from evaluation.results import experiment_results
from evaluation.worker import make_worker
from tests.evaluation.helpers import SECRET, T0, add_experiment, correction, prediction
from tests.evaluation.test_outcomes_worker import outcome, unit_rows

BEFORE_YEAR_1 = "0001-01-01T00:00:00+05:00"  # 0000-12-31T19:00Z: PostgreSQL kept it as BC


def _drain(db: Database, bus: EmbeddedBus, sent: int) -> None:
    """Run the worker until it has read everything sent."""
    worker = make_worker(db, bus, "t", secret=SECRET)
    try:
        read, idle = 0, 0
        while read < sent and idle < 20:
            got = worker.step(timeout_ms=200)
            read, idle = read + got, 0 if got else idle + 1
    finally:
        worker.close()
    assert read == sent


def _send(db: Database, bus: EmbeddedBus, batch: list[dict[str, Any]]) -> None:
    bus.ensure_topics(events.topics("t"))
    bus.producer().send_many((events.route(e, "t").topic, events.route(e, "t").key,
                              events.encode(e)) for e in batch)
    _drain(db, bus, len(batch))


def _parked(db: Database) -> dict[str, str]:
    with db.session() as s:
        return {r.event_id: r.reason for r in s.scalars(select(ParkedEvent))}


def test_bad_bus_events_are_parked_and_results_go_on(db: Database) -> None:
    bus = EmbeddedBus(db, partitions=1)
    exp = add_experiment(db)
    define_metric(db, exp, {"name": "won", "kind": "proportion", "direction": "higher"})
    too_early = outcome("won", 1, unit="u1", exp=exp, oid="o-early")
    too_early["observed_at"] = BEFORE_YEAR_1
    too_big = dict(outcome("won", 1, unit="u1", exp=exp, oid="o-big"), value=1_000_000)
    future = outcome("won", 1, unit="u1", exp=exp, oid="o-future",
                     at=datetime.now(UTC) + timedelta(days=1))
    before_exp = outcome("won", 0, unit="u1", exp=exp, oid="o-before",
                         at=T0 - timedelta(days=1))
    # A valid one in another zone: stored at its UTC time (SQLite kept its wall clock).
    zoned = outcome("won", 1, unit="u1", exp=exp, oid="o-zoned")
    zoned["observed_at"] = (T0 + timedelta(hours=1)).astimezone(
        datetime.fromisoformat("2026-01-01T00:00:00+05:00").tzinfo).isoformat()
    bad_prediction = prediction("p-bad", experiment_id=exp, arm="control", unit_id="u2")
    bad_prediction["occurred_at"] = BEFORE_YEAR_1
    bad_correction = correction("p1", "x")
    bad_correction["occurred_at"] = BEFORE_YEAR_1
    _send(db, bus, [too_early, too_big, future, before_exp, zoned, bad_prediction,
                    bad_correction])
    reasons = _parked(db)
    assert set(reasons) == {e["event_id"] for e in (too_early, too_big, future, before_exp,
                                                   bad_prediction, bad_correction)}
    assert "'observed_at'" in reasons[too_early["event_id"]]
    assert "is a proportion" in reasons[too_big["event_id"]]
    assert "in the future" in reasons[future["event_id"]]
    assert "before experiment" in reasons[before_exp["event_id"]]
    assert "'occurred_at'" in reasons[bad_prediction["event_id"]]
    assert "'occurred_at'" in reasons[bad_correction["event_id"]]
    with db.session() as s:
        assert s.scalars(select(Outcome.outcome_id)).all() == ["o-zoned"]
        stored = s.scalar(select(Outcome.observed_at))
        assert stored.replace(tzinfo=stored.tzinfo or UTC) == T0 + timedelta(hours=1)
    # The unit's next prediction is applied and counted, and the results read.
    _send(db, bus, [prediction("p1", experiment_id=exp, arm="control", unit_id="u1")])
    with db.session() as s:
        assert s.get(Prediction, "p1") is not None
        assert experiment_results(s, exp)["outcomes"]["won"]["waiting"]["outcomes"] == 0
    assert unit_rows(db) == {("control", "won", "u1"): (1, 1.0)}
    assert list_metrics(db, exp)[0]["waiting"]["outcomes"] == 0
    assert len(_parked(db)) == 6


def test_events_dated_far_ahead_are_parked_and_a_little_ahead_applied(db: Database) -> None:
    """Only outcomes were held to an hour ahead: a prediction of year 9999 was stored, its unit
    first seen then, and the sample-ratio check's next hour after it past what a date holds."""
    bus = EmbeddedBus(db, partitions=1)
    exp = add_experiment(db)
    now = datetime.now(UTC)
    far = prediction("p-far", experiment_id=exp, arm="control", unit_id="u1",
                     at=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    ahead = prediction("p-ahead", experiment_id=exp, arm="control", unit_id="u2",
                       at=now + timedelta(hours=2))
    soon = prediction("p-soon", experiment_id=exp, arm="control", unit_id="u3",
                      at=now + timedelta(minutes=30))  # another node's clock a little ahead
    late_correction = correction("p-soon", "x", at=now + timedelta(days=1))
    _send(db, bus, [far, ahead, soon, late_correction])
    reasons = _parked(db)
    assert set(reasons) == {e["event_id"] for e in (far, ahead, late_correction)}
    assert all("'occurred_at' lies in the future" in r for r in reasons.values())
    with db.session() as s:
        assert s.scalars(select(Prediction.prediction_id)).all() == ["p-soon"]
        assert experiment_results(s, exp)["experiment"]["id"] == exp
