"""The worker's aggregates: exact counts, corrections joined in either order, once each."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import events, receipts
from core.bus.base import Record
from core.bus.embedded import EmbeddedBus
from core.errors import AbvocError, Forbidden
from core.health import Heartbeat, component_checks
from core.store import schema
from core.store.db import Database
from core.store.models import (
    ComponentHeartbeat,
    OnlineAggregate,
    ParkedEvent,
    PredictionTruth,
    ProcessedEvent,
)
from core.stream import apply_records
from evaluation import sketch
from evaluation.online import Variant, load_cells, metrics
from evaluation.worker import GROUP_ID, apply_events, prepare_events, receipt_check, run_worker
from tests.evaluation.helpers import SECRET, T0, aggregate_totals, apply, correction, prediction


def test_predictions_are_summed_per_group_and_hour(db: Database) -> None:
    rng = np.random.default_rng(1)
    latencies = rng.lognormal(2.5, 0.5, 300)
    batch = [prediction(f"p{i}", latency_ms=float(latencies[i]), confidence=0.5 + i / 1000,
                        arm="control" if i % 2 else "treatment",
                        candidate="cand-a" if i % 2 else "cand-b",
                        at=T0 + timedelta(minutes=i // 3), unit_id=f"u{i % 50}")
             for i in range(300)]
    assert apply(db, batch[:150]) == 150
    assert apply(db, batch[150:]) == 150
    totals = aggregate_totals(db)
    assert totals["predictions"] == 300
    assert totals["latency_ms"] == 300
    assert totals["latency_ms.sum"] == pytest.approx(latencies.sum())
    assert totals["confidence.sum"] == pytest.approx(sum(0.5 + i / 1000 for i in range(300)))
    # 50 units, each on one arm only (u_k has the parity of k).
    assert totals["units"] == 50
    with db.session() as s:
        hours = set(s.scalars(select(OnlineAggregate.hour)))
        cells = load_cells(s, 1)
    assert len(hours) == 2  # 10:15 + 100 minutes crosses into 11:00
    control = cells[(Variant("control", "cand-a", False), "printed/middle")]
    assert control.latency.count == 150
    exact = np.quantile(latencies[1::2], 0.99)
    error = sketch.LAYOUT.relative_error
    assert metrics(control)["latency_p99_ms"] == pytest.approx(exact, rel=error)


def test_replayed_batches_and_duplicate_ids_count_once(db: Database) -> None:
    batch = [prediction(f"p{i}") for i in range(20)]
    apply(db, batch)
    assert apply(db, batch) == 0  # same event ids: the stream skips them
    again = [prediction(f"p{i}") for i in range(20)]  # new event ids, same prediction ids
    assert apply(db, again) == 20
    assert aggregate_totals(db)["predictions"] == 20


@pytest.mark.parametrize("order", ["prediction_first", "correction_first", "same_batch"])
def test_correction_joins_in_either_order_once(db: Database, order: str) -> None:
    p = prediction("p1", output="x^{2}", confidence=0.8)
    c1 = correction("p1", "x_{2}", at=T0 + timedelta(days=2))
    c2 = correction("p1", "x_{3}", at=T0 + timedelta(days=3))
    other = prediction("p2", output="y")
    if order == "prediction_first":
        apply(db, [p, other])
        apply(db, [c1])
        apply(db, [c2])
    elif order == "correction_first":
        apply(db, [c2])
        apply(db, [c1])
        apply(db, [p, other])
    else:
        apply(db, [c2, p, c1, other])
    totals = aggregate_totals(db)
    assert totals["predictions"] == 2
    assert totals["corrected"] == 1
    assert totals["exact_match"] == 1 and totals["exact_match.sum"] == 0
    with db.session() as s:
        truth = s.scalar(select(PredictionTruth.truth))
        cell = load_cells(s, 1)[(Variant("control", "cand-a", False), "all")]
    assert truth == "x_{2}"  # the earliest correction is the truth
    m = metrics(cell)
    assert m["correction_rate"] == 0.5
    assert m["token_edit_distance"] == pytest.approx(1 / 5)  # one of five tokens differs
    # One prediction with a truth, confidence 0.8, wrong: ECE = |0 - 0.8|.
    assert m["expected_calibration_error"] == pytest.approx(0.8)


def test_shadow_and_classification_outputs(db: Database) -> None:
    batch = [prediction(f"s{i}", shadow=True, arm=None, candidate="cand-s",
                        output="idle" if i < 8 else "jump") for i in range(10)]
    batch += [prediction("o1", stages={"converter": {"latex": "x"}}, output="x")]
    apply(db, batch + [correction("s0", "jump"), correction("s1", "jump")])
    with db.session() as s:
        cells = load_cells(s, 1)
    shadow = cells[(Variant("", "cand-s", True), "all")]
    m = metrics(shadow)
    assert m["output_shares"] == {"idle": 0.8, "jump": 0.2}
    assert m["units"] == 0  # shadow copies are not arm traffic
    from evaluation.online import estimated_label_counts
    assert estimated_label_counts(shadow) == {"idle": 6, "jump": 4}
    staged = metrics(cells[(Variant("control", "cand-a", False), "all")])
    assert staged["output_shares"] == {}  # multi-stage LaTeX outputs are not classes


def test_a_refused_event_rolls_back_the_batch_and_only_it_is_parked(db: Database) -> None:
    """The batch goes in one transaction; when the handler refuses an event, the batch is
    applied again event by event, so the good ones count once and the bad one is parked."""

    def refuse_p3(session: Session, batch: list[dict]) -> None:
        apply_events(session, batch)
        if any(e.get("prediction_id") == "p3" for e in batch):
            raise AbvocError("p3 is refused")

    batch = [prediction(f"p{i}", latency_ms=10.0 + i) for i in range(6)]
    payloads = [events.encode(e) for e in batch]
    payloads.insert(2, b"not json")
    payloads.append(payloads[0])  # the same event id twice in one batch
    records = [Record("t.predictions", 0, i, "k", v) for i, v in enumerate(payloads)]
    assert apply_records(db, GROUP_ID, records, refuse_p3) == 5
    assert apply_records(db, GROUP_ID, records, refuse_p3) == 0  # a replay changes nothing
    totals = aggregate_totals(db)
    assert totals["predictions"] == 5
    assert totals["latency_ms"] == 5
    assert totals["latency_ms.sum"] == pytest.approx(sum(10.0 + i for i in (0, 1, 2, 4, 5)))
    with db.session() as s:
        parked = list(s.scalars(select(ParkedEvent.reason).order_by(ParkedEvent.offset)))
        done = s.scalar(select(func.count()).select_from(ProcessedEvent))
    assert len(parked) == 2  # the bad JSON once, p3 once
    assert parked[0].startswith("not JSON") and parked[1] == "p3 is refused"
    assert done == 5


def test_corrections_on_the_bus_count_only_with_their_predictions_receipt(db: Database) -> None:
    """Whoever can write to the corrections topic must not set the truth of a prediction whose
    receipt they never saw: such events are parked with the reason."""
    forged = correction("p1", "y_{1}")
    forged["receipt"] = receipts.sign("someone-elses-secret", "p1")
    missing = correction("p1", "y_{2}")
    del missing["receipt"]
    old = {**correction("p1", "y_{3}"), "schema_version": 1}  # v1: before receipts travelled
    del old["receipt"]
    borrowed = correction("p1", "y_{4}")
    borrowed["receipt"] = receipts.sign(SECRET, "p2")  # a valid receipt, of another prediction
    batch = [prediction("p1", output="x"), forged, missing, old, borrowed,
             correction("p1", "x_{2}")]
    records = [Record("t", 0, i, "p1", events.encode(e)) for i, e in enumerate(batch)]
    assert apply_records(db, GROUP_ID, records, apply_events, check=receipt_check(SECRET)) == 2
    with db.session() as s:
        reasons = list(s.scalars(select(ParkedEvent.reason).order_by(ParkedEvent.offset)))
        truth = s.scalar(select(PredictionTruth.truth))
    assert len(reasons) == 4 and all("no valid receipt for prediction 'p1'" in r for r in reasons)
    assert truth == "x_{2}"
    assert aggregate_totals(db)["corrected"] == 1


def test_a_worker_without_the_secret_refuses_every_correction(db: Database) -> None:
    records = [Record("t", 0, 0, "p1", events.encode(correction("p1", "x")))]
    assert apply_records(db, GROUP_ID, records, apply_events, check=receipt_check(None)) == 0
    with db.session() as s:
        assert "no secret" in s.scalar(select(ParkedEvent.reason))


def test_a_refused_receipt_says_what_it_would_have_let_count() -> None:
    """An outcome's reason said "only the receipt ... lets a correction count"."""
    forged_outcome = events.make_event(events.OUTCOME_RECORDED, outcome_id="o1", experiment_id=1,
                                       metric="won", value=1.0, observed_at=T0.isoformat(),
                                       prediction_id="p1", receipt="0" * 64)
    with pytest.raises(Forbidden, match="lets an outcome count$"):
        receipt_check(SECRET)(forged_outcome)
    with pytest.raises(Forbidden, match="lets a correction count$"):
        receipt_check("another-key")(correction("p1", "x"))


def test_a_worker_says_what_it_reads_in_its_log_and_heartbeat(
        db: Database, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker with a mistyped ABVOC_TOPIC_PREFIX read its own empty topics, logged nothing of
    them, and beat as healthy; its heartbeat now names the prefix (and group) /readyz checks."""
    stop = threading.Event()
    stop.set()  # starts, beats once, stops (a clean stop deletes the row: read it before)
    beats: list[tuple[str, str | None, str | None]] = []
    forget = Heartbeat.forget

    def read_then_forget(heartbeat: Heartbeat) -> None:
        with db.reading() as s:
            beats.extend(tuple(r) for r in s.execute(select(
                ComponentHeartbeat.component, ComponentHeartbeat.topic_prefix,
                ComponentHeartbeat.consumer_group)))
        forget(heartbeat)

    monkeypatch.setattr(Heartbeat, "forget", read_then_forget)
    with caplog.at_level(logging.INFO, logger="evaluation.worker"):
        run_worker(db, EmbeddedBus(db), "abvocx", stop, secret=SECRET)
    assert (f"consumer group '{GROUP_ID}' reads abvocx.predictions, abvocx.corrections, "
            "abvocx.outcomes (ABVOC_TOPIC_PREFIX='abvocx')") in caplog.text
    assert beats == [("worker", "abvocx", GROUP_ID)]
    assert component_checks(db, expected=["worker"])["worker"].startswith("down: stopped")


def _records(batch: list[dict]) -> list[Record]:
    return [Record("t", 0, i, "k", events.encode(e)) for i, e in enumerate(batch)]


def test_a_prepared_batch_is_applied_as_an_unprepared_one(db: Database, tmp_path: Path
                                                           ) -> None:
    """The worker builds a batch's rows and sums before its transaction opens (prepare); what
    it stores is what the handler alone stores, a partly replayed batch included (only the
    new predictions count: its plain insert, COPY on PostgreSQL, meets the stored ids and the
    batch goes again event by event, nothing parked) and a batch whose preparation fails."""
    batch = [prediction(f"p{i}", latency_ms=5.0 + i, confidence=i / 40, unit_id=f"u{i % 7}",
                        at=T0 + timedelta(minutes=7 * i)) for i in range(40)]
    batch += [correction(f"p{i}", "y", at=T0 + timedelta(hours=6)) for i in range(0, 40, 3)]
    plain = Database(f"sqlite:///{tmp_path / 'plain.db'}")
    schema.upgrade(plain)
    assert apply_records(plain, GROUP_ID, _records(batch), apply_events) == len(batch)

    calls = []

    def prepare(b: list[dict]) -> object:
        calls.append(len(b))
        return prepare_events(b)

    assert apply_records(db, GROUP_ID, _records(batch[:10]), apply_events, prepare=prepare) == 10
    # the first ten again (new event ids: a producer's retry), then the rest
    retried = [{**e, "event_id": f"retry-{e['event_id']}"} for e in batch[:10]]
    assert apply_records(db, GROUP_ID, _records(retried + batch[10:]), apply_events,
                         prepare=prepare) == len(batch)
    assert calls == [10, len(batch)]

    def broken(b: list[dict]) -> object:
        raise ValueError("cannot prepare")

    again = [{**e, "event_id": f"again-{e['event_id']}"} for e in batch]
    assert apply_records(db, GROUP_ID, _records(again), apply_events, prepare=broken) == \
        len(batch)
    assert aggregate_totals(db) == aggregate_totals(plain)
    with db.reading() as s, plain.reading() as p:
        truths = select(func.count()).select_from(PredictionTruth)
        assert s.scalar(truths) == p.scalar(truths) == len(range(0, 40, 3))
        assert s.scalar(select(func.count()).select_from(ParkedEvent)) == 0
    plain.dispose()
